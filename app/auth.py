"""Finding the scope of a presented API key, and creating keys from the command line."""

from __future__ import annotations

from dataclasses import dataclass

from facever.app import crud
from facever.app.core import security
from facever.app.core.config import Settings, get_settings
from facever.app.db.session import Database
from facever.app.ratelimit import AuthLimits


@dataclass(frozen=True)
class Principal:
    scope: str
    source: str  # "database", "environment" or "auth-disabled"


class Authenticator:
    """Keys come from the api_keys table (``facever keys create``) and from FACEVER_API_KEYS_ADMIN /
    FACEVER_API_KEYS_VERIFY; both are held only as SHA-256 hashes."""

    def __init__(self, settings: Settings, database: Database):
        self.enabled = settings.auth == "enabled"
        self.database = database
        self.limits = AuthLimits(settings)  # failed attempts per address, requests per key
        self._bootstrap = {
            security.hash_key(key): scope for scope, keys in settings.bootstrap_keys().items() for key in keys
        }

    @property
    def bootstrap_key_count(self) -> int:
        return len(self._bootstrap)

    def authenticate(self, key: str | None) -> Principal | None:
        """The key's principal, or None for an unknown key. Blocking (database): call from a thread."""
        if not self.enabled:
            return Principal("admin", "auth-disabled")
        if not key:
            return None
        key_hash = security.hash_key(key)
        if key_hash in self._bootstrap:
            return Principal(self._bootstrap[key_hash], "environment")
        with self.database.sessions() as session:
            scope = crud.scope_of_key_hash(session, key_hash)
        return Principal(scope, "database") if scope else None

    def key_count(self) -> int:
        with self.database.sessions() as session:
            return crud.count_api_keys(session) + self.bootstrap_key_count


def create_key_cli(scope: str, name: str) -> str:
    """``facever keys create``: store a new key's hash in the configured database, show the key once."""
    if scope not in security.SCOPES:
        raise ValueError(f"scope must be one of {', '.join(security.SCOPES)}, not {scope!r}")
    from facever.app.db.migrate import upgrade

    settings = get_settings()
    database = Database(settings.database_url)
    try:
        upgrade(settings.database_url, database.engine)
        with database.sessions() as session:
            row, key = crud.create_api_key(session, scope, name)
    finally:
        database.dispose()
    label = f' "{name}"' if name else ""
    return (
        f"Created API key #{row.id}{label} with scope {scope}:\n\n"
        f"    {key}\n\n"
        "Send it in the X-API-Key header. It is shown only now: the database keeps only its SHA-256 hash."
    )
