"""The stored templates' keys: the start-up check, and ``facever keys rotate-templates``.

Rotation without downtime:
1. ``facever keys new-template-key`` makes a key.
2. Restart the service (replica by replica) with it as FACEVER_TEMPLATE_KEY and the old one in
   FACEVER_TEMPLATE_PREVIOUS_KEYS: new templates are written under the new key, old ones still read.
3. ``facever keys rotate-templates`` (same settings) re-encrypts every template not under the current
   key (in clear ones too), in small transactions, while the service answers.
4. When it reports every template under the current key, drop the old key from the settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from facever.app import crud
from facever.app.db.session import Database, erase_deleted
from facever.app.stored_embeddings import TemplateCodec
from facever.app.template_crypto import TemplateKeyError

log = logging.getLogger("facever.template_keys")


def check_stored_templates(database: Database, codec: TemplateCodec) -> str:
    """Refuse to start (TemplateKeyError) when stored templates are under a key that is not configured;
    else a line saying how the templates are stored, for the start-up log."""
    with database.sessions() as session:
        in_use = crud.key_ids_in_use(session)
    clear = in_use.pop(None, 0)
    configured = set(codec.ring.keys) if codec.ring else set()
    unknown = {key: count for key, count in in_use.items() if key not in configured}
    if unknown:
        listed = ", ".join(f"{key} ({count} templates)" for key, count in sorted(unknown.items()))
        where = (
            "no template key is configured"
            if codec.ring is None
            else f"the configured keys are {sorted(configured)}"
        )
        raise TemplateKeyError(
            f"stored templates are encrypted under key ids {listed}, but {where}: set the key they were "
            "written with as FACEVER_TEMPLATE_KEY (or in FACEVER_TEMPLATE_PREVIOUS_KEYS while rotating)"
        )
    if codec.ring is None:
        return (
            f"templates are stored IN CLEAR ({clear} stored): set FACEVER_TEMPLATE_KEY to encrypt them "
            "at rest (see the README's 'Biometric data')"
        )
    behind = sum(count for key, count in in_use.items() if key != codec.ring.current_id)
    line = f"templates are encrypted at rest with AES-256-GCM, current key {codec.ring.current_id}"
    if clear or behind:
        line += (
            f"; {clear} stored in clear and {behind} under a previous key: run "
            "`facever keys rotate-templates` to move them to the current key"
        )
    return line


@dataclass(frozen=True)
class RotationResult:
    key_id: str
    rotated: int
    remaining: dict[str | None, int]  # key id -> templates not under the current key (after the run)


def rotate(database: Database, codec: TemplateCodec, batch: int = 500) -> RotationResult:
    """Re-encrypt every template that is not under the current key. Each batch is one short transaction
    and each row is rewritten only if it is still as read (a row deleted or enrolled meanwhile is left
    alone), so the service goes on reading and writing throughout."""
    if codec.ring is None:
        raise TemplateKeyError("set FACEVER_TEMPLATE_KEY (the new key) to rotate the templates to it")
    check_stored_templates(database, codec)  # every old key must be readable before anything changes
    current = codec.ring.current_id
    rotated, after = 0, 0
    while True:
        with database.sessions() as session:
            rows = crud.faces_not_under(session, current, after, batch)
            for row in rows:
                blob, _ = codec.seal_bytes(codec.open_bytes(row), row.id, row.identity_id)
                rotated += crud.replace_template(session, row.id, row.key_id, blob, current)
            session.commit()
        if rows:
            after = rows[-1].id
            log.info("rotated %d templates (up to face %d)", rotated, after)
        if len(rows) < batch:
            break
    _erase_old_versions(database)
    with database.sessions() as session:
        remaining = {key: n for key, n in crud.key_ids_in_use(session).items() if key != current}
    return RotationResult(current, rotated, remaining)


def _erase_old_versions(database: Database) -> None:
    """The old ciphertexts (or clear templates) must not linger in SQLite's WAL or PostgreSQL's dead
    rows. PostgreSQL's VACUUM runs here, before the command exits (erase_deleted's is in the background)."""
    if database.backend != "postgresql":
        erase_deleted(database.engine)
        return
    try:
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM faces")
    except Exception as exc:  # noqa: BLE001 - the rotation itself is done; say what is left to do
        log.warning("VACUUM faces after the rotation failed (%s): run it yourself", exc)


def rotate_cli(batch: int) -> str:
    """``facever keys rotate-templates``: the summary printed."""
    from facever.app.auth import migrated_database
    from facever.app.core.config import get_settings
    from facever.app.template_crypto import key_ring

    codec = TemplateCodec(key_ring(get_settings()))
    with migrated_database() as database:
        result = rotate(database, codec, batch)
    lines = [f"re-encrypted {result.rotated} templates under the current key {result.key_id}"]
    if result.remaining:
        left = ", ".join(f"{n} under {key or 'no key (clear)'}" for key, n in result.remaining.items())
        lines.append(f"NOT done: {left} (enrolled by a service without the new key?): run it again")
    else:
        lines.append(
            "every stored template is under the current key: the previous keys can be removed from "
            "FACEVER_TEMPLATE_PREVIOUS_KEYS"
        )
    return "\n".join(lines)
