"""Identities, their face templates, API keys, and the gallery version and change log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("external_id", sa.String(256), nullable=True, unique=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "faces",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "identity_id", Id, sa.ForeignKey("identities.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("detection_score", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_faces_model", "faces", ["model_name", "model_version"])
    op.create_table(
        "api_keys",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    state = op.create_table(
        "gallery_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "version": 0}])
    op.create_table(
        "gallery_changes",
        sa.Column("id", Id, primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False, index=True),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("face_id", sa.BigInteger(), nullable=True),
        sa.Column("identity_id", sa.BigInteger(), nullable=True),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("gallery_changes")
    op.drop_table("gallery_state")
    op.drop_table("api_keys")
    op.drop_index("ix_faces_model", table_name="faces")
    op.drop_table("faces")
    op.drop_table("identities")
