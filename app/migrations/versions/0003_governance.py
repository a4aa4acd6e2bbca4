"""Biometric data governance: the key id of each encrypted template, identities' expiry, the
append-only audit trail (a trigger refuses every UPDATE of it), and, on SQLite, identity ids that are
never reused (AUTOINCREMENT), since audit records name identities by id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

APPEND_ONLY = "audit records are append-only"


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy of the tables): both databases do it in place.
    op.add_column("faces", sa.Column("key_id", sa.String(32), nullable=True))
    op.create_index("ix_faces_key_id", "faces", ["key_id"])
    op.add_column("identities", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        _identities_autoincrement()
    op.create_index("ix_identities_expires_at", "identities", ["expires_at"])

    op.create_table(
        "audit_records",
        sa.Column("id", Id, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=True),
        sa.Column("api_key_name", sa.String(300), nullable=False),
        sa.Column("identity_ids", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_records_at", "audit_records", ["at"])
    op.create_index("ix_audit_records_operation", "audit_records", ["operation"])
    op.create_index("ix_audit_records_api_key_id", "audit_records", ["api_key_id"])
    op.create_table(
        "audit_identities",
        sa.Column("audit_id", Id, sa.ForeignKey("audit_records.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("identity_id", sa.BigInteger(), primary_key=True),
    )
    op.create_index("ix_audit_identities_identity_id", "audit_identities", ["identity_id"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION facever_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
        for table in ("audit_records", "audit_identities"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION facever_audit_append_only()"
            )
    else:
        for table in ("audit_records", "audit_identities"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )


def _identities_autoincrement() -> None:
    """SQLite gives a new row the highest id + 1, so deleting the newest identity let the next one take
    its id; AUTOINCREMENT never reuses one. Adding it copies the table (a batch migration), which
    facever.app.db.migrate runs with foreign keys off: dropping the old table must not cascade to faces."""
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "this migration must run with SQLite's foreign keys off (else it deletes every face): "
            "use `facever db upgrade`"
        )
    with op.batch_alter_table("identities", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    op.drop_table("audit_identities")  # drops its trigger with it
    op.drop_table("audit_records")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION facever_audit_append_only()")
    op.drop_index("ix_identities_expires_at", table_name="identities")
    op.drop_index("ix_faces_key_id", table_name="faces")
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("key_id")
