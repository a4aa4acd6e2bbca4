"""API keys: how they look, how they are hashed, what each scope may do.

A key is 32 random bytes (``fvk_`` + URL-safe base64). Only its SHA-256 is stored. A slow password
hash (scrypt, bcrypt) protects low-entropy secrets against guessing; a 256-bit random key cannot be
guessed, so a fast hash is enough and lets the service find a key by its hash in one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

Scope = Literal["admin", "verify"]
SCOPES: tuple[Scope, ...] = ("admin", "verify")
KEY_PREFIX = "fvk_"

# admin manages identities and may also do everything verify may.
_GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin", "verify"}),
    "verify": frozenset({"verify"}),
}


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """The start of a key, safe to store and show, so that people can tell their keys apart."""
    return key[: len(KEY_PREFIX) + 6]


def grants(scope: str, needed: str) -> bool:
    return needed in _GRANTS.get(scope, frozenset())
