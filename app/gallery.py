"""The in-memory gallery that identify searches, and how replicas keep it in step with the database.

Consistency model
-----------------
The database is the only source of truth; each replica (process) holds a read-only copy of the
templates of the current model (name and version) as one float32 matrix.

* Every transaction that adds or removes templates first increments the single row of
  ``gallery_state`` and appends what it changed to ``gallery_changes`` under that version. The
  increment locks the row until commit, so writes are serialised and become visible in version
  order: a replica that reads version *v* finds every change up to *v* in the log.
* Each replica polls ``gallery_state`` every ``FACEVER_GALLERY_POLL_INTERVAL`` seconds (0.5 s by
  default; one indexed single-row read) and, when the version moved, applies the logged changes
  since its own version: it loads the added templates and drops the removed faces and identities.
  A replica that fell further behind than the log keeps (10,000 versions), or that starts, loads
  the whole gallery.
* The replica that made a change applies it before answering, so a client sees its own
  enrollments and deletions at once; other replicas see them within one poll interval plus the
  time to apply (well under a second by default). Identify may therefore miss, for that short
  window, a template just enrolled elsewhere, or return an identity just deleted elsewhere; it
  never returns a name for a deleted identity, because names are read from the database after the
  search. Verify-against-identity and every identity endpoint read the database directly and are
  always current.

Scores: an identity's score is its best match, the highest cosine similarity between the probe and
any of its templates; identities are ranked by it.

Memory: the templates are one float32 matrix (N x D x 4 bytes: 512 MB for a million 128-D templates)
in a buffer that grows by doubling. Adding templates writes rows past the end and costs only those
rows; removing some copies the kept rows into a new buffer (one pass over the matrix). The search
core, ``TemplateIndex``, needs no database (the benchmarks use it directly).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from facever.app import metrics
from facever.app.db.models import Face, GalleryChange, GalleryState
from facever.app.db.session import Database
from facever.app.stored_embeddings import ModelRef, from_bytes

log = logging.getLogger("facever.gallery")

_IN_CHUNK = 1000  # ids per IN (...) query


@dataclass(frozen=True)
class Match:
    identity_id: int
    face_id: int
    score: float


@dataclass(frozen=True)
class _Snapshot:
    """What one search sees; a change publishes a new one, so searches never lock.

    The arrays are views of the first N rows of the index's buffers; rows a snapshot can see are
    never written again (see ``TemplateIndex``)."""

    matrix: np.ndarray  # (N, D) float32 unit rows
    face_ids: np.ndarray  # (N,) int64
    identity_ids: np.ndarray  # (N,) int64

    @classmethod
    def empty(cls, dim: int) -> _Snapshot:
        return cls(np.empty((0, dim), np.float32), np.empty(0, np.int64), np.empty(0, np.int64))

    @cached_property
    def identity_count(self) -> int:
        return len(np.unique(self.identity_ids))


class TemplateIndex:
    """The templates in memory and the search over them; no database.

    Rows live in buffers with spare capacity that doubles when full. ``add`` writes the new rows
    past the current end and publishes a snapshot one view longer: O(added rows), not a copy of the
    matrix. ``remove`` compacts the kept rows into new buffers (a copy), so a row that a published
    snapshot can see is never overwritten and concurrent searches need no lock. Changes must be
    serialised by the caller (``Gallery`` holds its sync lock)."""

    MIN_CAPACITY = 1024

    def __init__(self, dim: int):
        self.dim = dim
        self._matrix = np.empty((0, dim), np.float32)
        self._face_ids = np.empty(0, np.int64)
        self._identity_ids = np.empty(0, np.int64)
        self._snapshot = _Snapshot.empty(dim)

    @property
    def size(self) -> int:
        return len(self._snapshot.face_ids)

    @property
    def identity_count(self) -> int:
        return self._snapshot.identity_count

    @property
    def nbytes(self) -> int:
        """Bytes of the rows in use (matrix and ids); spare capacity is reserved but not touched."""
        snapshot = self._snapshot
        return snapshot.matrix.nbytes + snapshot.face_ids.nbytes + snapshot.identity_ids.nbytes

    def replace(self, matrix: np.ndarray, face_ids: np.ndarray, identity_ids: np.ndarray) -> None:
        """Hold exactly these templates (a full reload)."""
        self._matrix = np.ascontiguousarray(matrix, np.float32).reshape(-1, self.dim)
        self._face_ids = np.asarray(face_ids, np.int64)
        self._identity_ids = np.asarray(identity_ids, np.int64)
        self._publish(len(self._face_ids))

    def add(self, matrix: np.ndarray, face_ids: np.ndarray, identity_ids: npt.ArrayLike) -> None:
        """Append templates; faces already held (a reload may have loaded them already) are skipped."""
        face_ids = np.asarray(face_ids, np.int64)
        new = ~np.isin(face_ids, self._snapshot.face_ids)
        if not new.any():
            return
        n, k = self.size, int(new.sum())
        if n + k > len(self._face_ids):
            self._grow(n, max(n + k, 2 * len(self._face_ids), self.MIN_CAPACITY))
        self._matrix[n : n + k] = np.asarray(matrix, np.float32).reshape(-1, self.dim)[new]
        self._face_ids[n : n + k] = face_ids[new]
        self._identity_ids[n : n + k] = np.asarray(identity_ids, np.int64)[new]
        self._publish(n + k)

    def remove(self, face_ids: npt.ArrayLike = (), identity_ids: npt.ArrayLike = ()) -> None:
        """Drop these faces and every template of these identities."""
        old = self._snapshot
        drop = np.isin(old.face_ids, np.asarray(face_ids, np.int64))
        drop |= np.isin(old.identity_ids, np.asarray(identity_ids, np.int64))
        if not drop.any():
            return
        keep = ~drop
        # new buffers, so that searches still running on the old snapshot see unchanged rows
        self._matrix = old.matrix[keep]
        self._face_ids = old.face_ids[keep]
        self._identity_ids = old.identity_ids[keep]
        self._publish(len(self._face_ids))

    def _grow(self, n: int, capacity: int) -> None:
        matrix = np.empty((capacity, self.dim), np.float32)
        face_ids = np.empty(capacity, np.int64)
        identity_ids = np.empty(capacity, np.int64)
        matrix[:n] = self._matrix[:n]
        face_ids[:n] = self._face_ids[:n]
        identity_ids[:n] = self._identity_ids[:n]
        self._matrix, self._face_ids, self._identity_ids = matrix, face_ids, identity_ids

    def _publish(self, n: int) -> None:
        self._snapshot = _Snapshot(self._matrix[:n], self._face_ids[:n], self._identity_ids[:n])

    def search(self, probe: np.ndarray, top_k: int, min_score: float | None) -> list[Match]:
        """The ``top_k`` identities most like ``probe`` (a unit vector), each scored by its best
        template, best first; only those scoring >= ``min_score`` unless it is None."""
        snapshot = self._snapshot
        if not len(snapshot.face_ids):
            return []
        scores = snapshot.matrix @ probe.astype(np.float32)
        candidates = np.arange(len(scores))
        if min_score is not None:
            candidates = np.flatnonzero(scores >= min_score)
        ranked = _best_per_identity(scores, snapshot.identity_ids, candidates, top_k)
        return [
            Match(int(snapshot.identity_ids[i]), int(snapshot.face_ids[i]), float(scores[i])) for i in ranked
        ]


class Gallery:
    def __init__(self, database: Database, model: ModelRef, dim: int):
        self.database = database
        self.model = model
        self.dim = dim
        self.version: int | None = None  # gallery_state.version this copy reflects; None = not loaded
        self.index = TemplateIndex(dim)
        self._sync_lock = threading.Lock()

    @property
    def size(self) -> int:
        return self.index.size

    @property
    def identity_count(self) -> int:
        return self.index.identity_count

    # -- keeping in step ---------------------------------------------------------------------------

    def sync(self) -> bool:
        """Catch up with the database; True when something changed. Blocking: call from a thread."""
        with self._sync_lock:
            with self.database.sessions() as session:
                current = session.scalar(select(GalleryState.version).where(GalleryState.id == 1))
                if current is None:
                    raise RuntimeError("gallery_state is empty: the database was not migrated")
                if current == self.version:
                    return False
                if self.version is None or not self._apply_changes(session):
                    self._reload(session)
            metrics.GALLERY_TEMPLATES.set(self.size)
            return True

    def _reload(self, session) -> None:
        # The version is read before the templates: changes committed in between are in the
        # templates already and are applied again on the next sync, which is harmless (idempotent).
        version = session.scalar(select(GalleryState.version).where(GalleryState.id == 1))
        rows = session.execute(
            select(Face.id, Face.identity_id, Face.embedding)
            .where(Face.model_name == self.model.name, Face.model_version == self.model.version)
            .order_by(Face.id)
        ).all()
        self.index.replace(
            from_bytes([row.embedding for row in rows], self.dim),
            np.array([row.id for row in rows], np.int64),
            np.array([row.identity_id for row in rows], np.int64),
        )
        self.version = version
        log.info("gallery loaded: %d templates of %s %s (version %s)", self.size, *self._model_pair, version)

    def _apply_changes(self, session) -> bool:
        """Apply the logged changes since self.version; False when the log no longer reaches back."""
        changes = session.execute(
            select(GalleryChange.version, GalleryChange.op, GalleryChange.face_id, GalleryChange.identity_id)
            .where(GalleryChange.version > self.version)
            .order_by(GalleryChange.version, GalleryChange.id)
        ).all()
        if not changes or changes[0].version != self.version + 1:
            return False
        added = [c.face_id for c in changes if c.op == "add_face"]
        removed_faces = np.array([c.face_id for c in changes if c.op == "remove_face"], np.int64)
        removed_identities = np.array([c.identity_id for c in changes if c.op == "remove_identity"], np.int64)

        new_ids, new_identities, new_blobs = [], [], []
        for start in range(0, len(added), _IN_CHUNK):
            # Faces deleted since they were logged are simply not found; their removal is logged too.
            for row in session.execute(
                select(Face.id, Face.identity_id, Face.embedding).where(
                    Face.id.in_(added[start : start + _IN_CHUNK]),
                    Face.model_name == self.model.name,
                    Face.model_version == self.model.version,
                )
            ):
                new_ids.append(row.id)
                new_identities.append(row.identity_id)
                new_blobs.append(row.embedding)
        self.index.remove(removed_faces, removed_identities)
        self.index.add(from_bytes(new_blobs, self.dim), np.array(new_ids, np.int64), new_identities)
        self.version = changes[-1].version
        return True

    @property
    def _model_pair(self) -> tuple[str, str]:
        return self.model.name, self.model.version

    # -- searching ---------------------------------------------------------------------------------

    def search(self, probe: np.ndarray, top_k: int, min_score: float | None) -> list[Match]:
        """See ``TemplateIndex.search``."""
        return self.index.search(probe, top_k, min_score)


def _best_per_identity(
    scores: np.ndarray, identities: np.ndarray, candidates: np.ndarray, k: int
) -> np.ndarray:
    """Row indices of the best template of each of the k best identities among ``candidates``.

    Looks at the m highest-scoring templates only, growing m until they hold k identities, so a
    large gallery costs one argpartition rather than a full sort."""
    m = min(len(candidates), 4 * k)
    while True:
        if m < len(candidates):
            top = candidates[np.argpartition(-scores[candidates], m - 1)[:m]]
        else:
            top = candidates
        top = top[np.argsort(-scores[top], kind="stable")]
        _, first = np.unique(identities[top], return_index=True)
        if len(first) >= k or m >= len(candidates):
            return top[np.sort(first)][:k]
        m = min(len(candidates), 4 * m)
