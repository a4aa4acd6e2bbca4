"""PostgreSQL with pgvector: faces.embedding_vector (vector(128)), filled from the stored templates, and
its HNSW index (cosine), which identify searches (facever.app.pgvector_gallery).

Nothing on SQLite, nor on a PostgreSQL where the ``vector`` extension cannot be created (not
installed, or no right to create it): those keep the in-memory gallery. To enable it there later,
install pgvector and run ``facever db pgvector`` (the same steps as this upgrade).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

from facever.app.db import vector_schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    vector_schema.add_vector_column(op.get_bind())


def downgrade() -> None:
    vector_schema.drop_vector_column(op.get_bind())
