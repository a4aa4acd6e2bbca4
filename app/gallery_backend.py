"""What identify searches, and which one a service uses.

* ``Gallery`` (facever.app.gallery): every replica holds the templates of the current model in memory
  and searches them exactly; it follows the database by polling. SQLite's, and PostgreSQL's without
  pgvector.
* ``PgvectorGallery`` (facever.app.pgvector_gallery): the database searches its HNSW index in one
  query; a replica holds nothing. PostgreSQL's with the ``vector`` extension (migration 0004 (pgvector)).

FACEVER_GALLERY chooses: ``auto`` (the default) takes pgvector where the column exists and fits the
model's embedding size, ``memory`` or ``pgvector`` force one (``pgvector`` fails at start without it).
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from facever.app.core.config import Settings
from facever.app.db import vector_schema
from facever.app.db.session import Database
from facever.app.db.vectors import vector_dim
from facever.app.gallery import Gallery
from facever.app.pgvector_gallery import PgvectorGallery
from facever.app.stored_embeddings import ModelRef, TemplateCodec
from facever.model.matching import Match

log = logging.getLogger("facever.gallery")


class GalleryBackend(Protocol):
    @property
    def version(self) -> int | None:
        """The gallery version (gallery_state) last seen; None before the first sync."""

    @property
    def size(self) -> int:
        """Templates of the current model (what identify reports as gallery_size)."""

    @property
    def identity_count(self) -> int: ...

    def sync(self) -> bool:
        """Follow the database (at start and from the poll); True when something changed. Blocking."""

    def catch_up(self) -> None:
        """Before a search: make every committed write visible to ``search``. Blocking."""

    def after_write(self) -> None:
        """After this process committed templates or deleted some: its next answers (searches, counts)
        reflect them. Blocking."""

    def search(self, probe: np.ndarray, top_k: int, min_score: float | None) -> list[Match]:
        """The ``top_k`` identities most like ``probe``, each scored by its best template (cosine),
        best first; only those scoring >= ``min_score`` unless it is None. Blocking."""


def open_gallery(
    settings: Settings, database: Database, model: ModelRef, dim: int, codec: TemplateCodec | None = None
) -> GalleryBackend:
    column = vector_dim(database.engine)
    usable = column == dim
    if settings.gallery == "pgvector" and not usable:
        reason = (
            f"faces.embedding_vector holds {column} floats, the model's embeddings {dim}"
            if column is not None
            else "the database has no faces.embedding_vector column (PostgreSQL with the vector extension "
            "and migration 0004 (pgvector); see the README's 'Galleries in PostgreSQL')"
        )
        raise RuntimeError(f"FACEVER_GALLERY=pgvector, but {reason}")
    if settings.gallery == "memory" or not usable:
        log.info("gallery: in memory (exact search)")
        return Gallery(database, model, dim, codec)
    if codec is not None and codec.encrypts:
        with database.engine.begin() as connection:
            if filled := vector_schema.fill_encrypted(connection, codec):
                log.info("pgvector: filled the vectors of %d encrypted templates", filled)
    log.info("gallery: pgvector HNSW in PostgreSQL (hnsw.ef_search %d)", settings.hnsw_ef_search)
    return PgvectorGallery(database, model, settings.hnsw_ef_search)
