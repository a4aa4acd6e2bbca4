"""Shared by the tests of issue 19 (templates encrypted at rest, audit trail, retention): fixed template
keys, and the byte search for templates in files and dumps."""

from __future__ import annotations

import base64

from facever.app.template_crypto import KeyRing, key_id

KEY_A_BYTES = bytes(range(32))
KEY_B_BYTES = bytes(range(100, 132))
KEY_A = base64.urlsafe_b64encode(KEY_A_BYTES).decode()
KEY_B = base64.b64encode(KEY_B_BYTES).decode()  # standard base64 is taken too
KEY_A_ID, KEY_B_ID = key_id(KEY_A_BYTES), key_id(KEY_B_BYTES)
RING = KeyRing.of(KEY_B_BYTES, [KEY_A_BYTES])  # reads both


def needles(template: bytes) -> list[bytes]:
    """The whole template and a distinctive slice of it (32 floats from the middle), raw and as the
    lowercase hex that pg_dump writes for a bytea."""
    middle = len(template) // 2
    raw = [template, template[middle : middle + 128]]
    return raw + [piece.hex().encode() for piece in raw]


def holds(content: bytes, template: bytes) -> bool:
    return any(needle in content for needle in needles(template))
