"""Each enrolled face's overall quality score, so that an identity's faces show it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for the faces enrolled before: their quality was not kept (the image never is).
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("quality", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("quality")
