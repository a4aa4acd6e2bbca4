"""The gallery in PostgreSQL: identify is one query on the HNSW index of faces.embedding_vector.

A replica holds no template: every search reads the table as committed, so an enrollment or deletion
made anywhere is searched (or not) at once, with no poll. The replica keeps only the gallery's
counts (templates and identities of the current model, for gallery_size and /v1/info), recounted
at start and by the poll when the gallery changed (the templates also after the replica's own writes).

The search (``SEARCH``): the index returns the ``hnsw.ef_search`` templates of the current model
nearest the probe by cosine distance (approximate: HNSW walks a graph; ``iterative_scan`` keeps it
going when the model filter drops candidates), set per query from FACEVER_HNSW_EF_SEARCH; those
candidates are re-ranked by their exact cosine with the probe (the inner product of unit vectors,
as the in-memory search computes it), the threshold applied, each identity's best template kept, and
the ``top_k`` best identities returned. Templates of another model are never compared.
"""

from __future__ import annotations

import numpy as np
from pgvector import Vector
from sqlalchemy import distinct, func, select, text

from facever.app import metrics
from facever.app.db.models import Face, GalleryState
from facever.app.db.session import Database
from facever.app.stored_embeddings import ModelRef
from facever.model.matching import Match

# The candidates CTE is MATERIALIZED so that the index scan (ORDER BY distance LIMIT) runs as
# written; ranking by the exact score happens after, on those rows only.
_CANDIDATES = """
WITH candidates AS MATERIALIZED (
    SELECT id, identity_id, -(embedding_vector <#> CAST(:probe AS vector)) AS score
    FROM faces
    WHERE model_name = :model_name AND model_version = :model_version AND embedding_vector IS NOT NULL
    ORDER BY embedding_vector <=> CAST(:probe AS vector)
    LIMIT :candidates
), best AS (
    SELECT DISTINCT ON (identity_id) identity_id, id, score
    FROM candidates
    {where}
    ORDER BY identity_id, score DESC, id
)
SELECT identity_id, id, score FROM best ORDER BY score DESC, id LIMIT :top_k
"""
SEARCH = text(_CANDIDATES.format(where=""))
SEARCH_ABOVE = text(_CANDIDATES.format(where="WHERE score >= :min_score"))
# Per query (this transaction only): how many candidates HNSW keeps, and filtered scans that go on
# until enough rows pass the model filter (pgvector >= 0.8).
SEARCH_PARAMETERS = text(
    "SELECT set_config('hnsw.ef_search', :ef_search, true), "
    "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
)


class PgvectorGallery:
    def __init__(self, database: Database, model: ModelRef, ef_search: int):
        self.database = database
        self.model = model
        self.ef_search = ef_search
        self.version: int | None = None
        self.size = 0
        self.identity_count = 0

    def sync(self) -> bool:
        """The poll: when another replica changed the gallery, count its templates and identities."""
        current = self._version()
        if current == self.version:
            return False
        with self.database.sessions() as session:
            size, identities = session.execute(
                select(func.count(), func.count(distinct(Face.identity_id))).where(*self._of_model)
            ).one()
        self.size, self.identity_count, self.version = size, identities, current
        metrics.GALLERY_TEMPLATES.set(size)
        return True

    def catch_up(self) -> None:
        """Nothing to catch up: each search reads the table as committed."""

    def after_write(self) -> None:
        """This replica's own write: its templates recounted at once (an index-only count; the
        identities, a costlier distinct count, follow with the next poll, which sees the version moved)."""
        with self.database.sessions() as session:
            self.size = session.scalar(select(func.count()).select_from(Face).where(*self._of_model)) or 0
        metrics.GALLERY_TEMPLATES.set(self.size)

    def _version(self) -> int:
        with self.database.sessions() as session:
            current = session.scalar(select(GalleryState.version).where(GalleryState.id == 1))
        if current is None:
            raise RuntimeError("gallery_state is empty: the database was not migrated")
        return current

    @property
    def _of_model(self):
        return (Face.model_name == self.model.name, Face.model_version == self.model.version)

    def search(self, probe: np.ndarray, top_k: int, min_score: float | None) -> list[Match]:
        parameters = {
            "probe": Vector(np.asarray(probe, np.float32)).to_text(),
            "model_name": self.model.name,
            "model_version": self.model.version,
            "candidates": max(self.ef_search, 4 * top_k),
            "top_k": top_k,
        }
        query = SEARCH
        if min_score is not None:
            query, parameters["min_score"] = SEARCH_ABOVE, min_score
        with self.database.engine.connect() as connection:
            connection.execute(SEARCH_PARAMETERS, {"ef_search": str(self.ef_search)})
            rows = connection.execute(query, parameters).all()
            connection.rollback()  # read only; ends the transaction that set the parameters
        return [Match(int(row.identity_id), int(row.id), float(row.score)) for row in rows]
