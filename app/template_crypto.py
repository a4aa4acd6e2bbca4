"""Templates encrypted at rest: AES-256-GCM (the ``cryptography`` package) with a ring of keys.

The current key encrypts every template written; earlier keys (FACEVER_TEMPLATE_PREVIOUS_KEYS) are
only read, so that ``facever keys rotate-templates`` can move rows to the current key while the
service runs. Each row stores the id of its key: the first 8 bytes (hex) of a SHA-256 of the key, so a
wrong key is an unknown id at start-up, never garbage. The associated data binds a ciphertext to its
row (face id and identity id): a ciphertext copied to another row, or a row moved to another identity,
fails authentication instead of decrypting.

Stored blob: 12-byte random nonce + ciphertext + 16-byte tag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facever.app.core.config import Settings

KEY_BYTES = 32
NONCE_BYTES = 12


class TemplateKeyError(Exception):
    """A template key is malformed or missing; the message says which setting and what to do."""


class TemplateDecryptionError(Exception):
    """A stored template failed authentication: altered, moved to another row, or under another key."""


def new_key() -> str:
    """A fresh key, as the settings take it (URL-safe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"facever template key id\0" + key).hexdigest()[:16]


def parse_key(text: str, source: str) -> bytes:
    text = text.strip()
    try:
        key = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise TemplateKeyError(
            f"{source} is not a template key: it must be {KEY_BYTES} bytes in base64 "
            "(`facever keys new-template-key` makes one)"
        )
    return key


def associated_data(face_id: int, identity_id: int) -> bytes:
    return b"facever face %d of identity %d" % (face_id, identity_id)


@dataclass(frozen=True)
class KeyRing:
    current_id: str
    keys: dict[str, AESGCM]  # key id -> cipher; the current key and every previous one

    @classmethod
    def of(cls, current: bytes, previous: list[bytes] = ()) -> KeyRing:  # type: ignore[assignment]
        keys = {key_id(key): AESGCM(key) for key in [*previous, current]}
        return cls(key_id(current), keys)

    def encrypt(self, plaintext: bytes, face_id: int, identity_id: int) -> tuple[bytes, str]:
        """(blob, key id) of a template under the current key."""
        nonce = os.urandom(NONCE_BYTES)
        cipher = self.keys[self.current_id]
        return nonce + cipher.encrypt(
            nonce, plaintext, associated_data(face_id, identity_id)
        ), self.current_id

    def decrypt(self, blob: bytes, key: str, face_id: int, identity_id: int) -> bytes:
        cipher = self.keys.get(key)
        if cipher is None:
            raise TemplateKeyError(
                f"face {face_id} is encrypted under template key {key}, which is not configured "
                "(FACEVER_TEMPLATE_KEY, FACEVER_TEMPLATE_KEY_FILE or FACEVER_TEMPLATE_PREVIOUS_KEYS)"
            )
        try:
            return cipher.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data(face_id, identity_id)
            )
        except InvalidTag:
            raise TemplateDecryptionError(
                f"the stored template of face {face_id} (identity {identity_id}) fails authentication "
                f"under key {key}: it was altered or copied from another row"
            ) from None


def key_ring(settings: Settings) -> KeyRing | None:
    """The configured keys, or None when templates are stored in clear. TemplateKeyError when a key is
    malformed or both the variable and the file are set."""
    texts: list[tuple[str, str]] = []  # (text, where it came from), current first
    direct = settings.template_key.get_secret_value().strip()
    if direct and settings.template_key_file is not None:
        raise TemplateKeyError("set FACEVER_TEMPLATE_KEY or FACEVER_TEMPLATE_KEY_FILE, not both")
    if direct:
        texts.append((direct, "FACEVER_TEMPLATE_KEY"))
    if settings.template_key_file is not None:
        path = settings.template_key_file
        try:
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise TemplateKeyError(
                f"FACEVER_TEMPLATE_KEY_FILE={path} cannot be read: {exc.strerror or exc}"
            ) from None
        if not lines:
            raise TemplateKeyError(f"FACEVER_TEMPLATE_KEY_FILE={path} is empty")
        texts += [(line, f"line {n} of FACEVER_TEMPLATE_KEY_FILE") for n, line in enumerate(lines, 1)]
    previous = [p.strip() for p in settings.template_previous_keys.get_secret_value().split(",") if p.strip()]
    if previous and not texts:
        raise TemplateKeyError(
            "FACEVER_TEMPLATE_PREVIOUS_KEYS is set but there is no current key (FACEVER_TEMPLATE_KEY): "
            "templates would be written in clear"
        )
    texts += [(text, f"key {n} of FACEVER_TEMPLATE_PREVIOUS_KEYS") for n, text in enumerate(previous, 1)]
    if not texts:
        return None
    keys = [parse_key(text, source) for text, source in texts]
    return KeyRing.of(keys[0], keys[1:])
