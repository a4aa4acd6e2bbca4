"""Finding the scope of a presented API key, and creating keys from the command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
    key_id: int | None = None  # api_keys.id of a database key
    name: str = ""  # what the audit trail calls the key (never the key itself)


class Authenticator:
    """Keys come from the api_keys table (``facever keys create``) and from FACEVER_API_KEYS_ADMIN /
    FACEVER_API_KEYS_VERIFY; both are held only as SHA-256 hashes."""

    def __init__(self, settings: Settings, database: Database):
        self.enabled = settings.auth == "enabled"
        self.database = database
        self.limits = AuthLimits(settings)  # failed attempts per address, requests per key
        self._bootstrap = {
            security.hash_key(key): Principal(
                scope,
                "environment",
                None,
                f"FACEVER_API_KEYS_{scope.upper()} {security.display_prefix(key)}...",
            )
            for scope, keys in settings.bootstrap_keys().items()
            for key in keys
        }

    @property
    def bootstrap_key_count(self) -> int:
        return len(self._bootstrap)

    def authenticate(self, key: str | None) -> Principal | None:
        """The key's principal, or None for an unknown key. Blocking (database): call from a thread."""
        if not self.enabled:
            return Principal("admin", "auth-disabled", None, "no key (FACEVER_AUTH=disabled)")
        if not key:
            return None
        key_hash = security.hash_key(key)
        if key_hash in self._bootstrap:
            return self._bootstrap[key_hash]
        with self.database.sessions() as session:
            row = crud.key_of_hash(session, key_hash)
        if row is None:
            return None
        return Principal(row.scope, "database", row.id, row.name or f"{row.key_prefix}...")

    def key_count(self) -> int:
        with self.database.sessions() as session:
            return crud.count_api_keys(session) + self.bootstrap_key_count


def create_key_cli(scope: str, name: str) -> str:
    """``facever keys create``: store a new key's hash in the configured database, show the key once."""
    if scope not in security.SCOPES:
        raise ValueError(f"scope must be one of {', '.join(security.SCOPES)}, not {scope!r}")
    with migrated_database() as database, database.sessions() as session:
        row, key = crud.create_api_key(session, scope, name)
    label = f' "{name}"' if name else ""
    return (
        f"Created API key #{row.id}{label} with scope {scope}:\n\n"
        f"    {key}\n\n"
        "Send it in the X-API-Key header. It is shown only now: the database keeps only its SHA-256 hash."
    )


def list_keys_cli() -> str:
    """``facever keys list``: the stored keys, by id, with the first characters of each (never a key)."""
    with migrated_database() as database, database.sessions() as session:
        rows = crud.list_api_keys(session)
        lines = [
            f"#{row.id}  {row.scope:<6}  {row.key_prefix}...  {row.created_at:%Y-%m-%d %H:%M} UTC  {row.name}"
            for row in rows
        ]
    settings = get_settings()
    from_environment = sum(len(keys) for keys in settings.bootstrap_keys().values())
    if not lines:
        lines = ["no API key is stored in the database"]
    if from_environment:
        lines.append(
            f"(and {from_environment} from FACEVER_API_KEYS_ADMIN / _VERIFY: remove them there to revoke)"
        )
    return "\n".join(lines)


def revoke_key_cli(key_id: int) -> str:
    """``facever keys revoke ID``: delete the key's hash; requests with it get 401 from then on (the
    service reads the table for every request)."""
    with migrated_database() as database, database.sessions() as session:
        row = crud.delete_api_key(session, key_id)
    if row is None:
        raise LookupError(f"no API key #{key_id} (facever keys list shows them)")
    label = f' "{row.name}"' if row.name else ""
    return f"Revoked API key #{row.id}{label} ({row.scope}, {row.key_prefix}...): it is refused from now on."


@contextmanager
def migrated_database() -> Iterator[Database]:
    from facever.app.db.migrate import upgrade

    settings = get_settings()
    database = Database(settings.database_url)
    try:
        upgrade(settings.database_url, database.engine)
        yield database
    finally:
        database.dispose()
