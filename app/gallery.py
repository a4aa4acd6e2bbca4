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
* The replica that made a change applies it before answering, and identify catches up (the same
  sync: one single-row read when nothing changed) before it searches, so a client sees its own
  enrollments and deletions at once, whichever server process or replica answers it. Between
  identifies the poll keeps each copy close, so that catching up stays small. Identify never
  returns a name for a deleted identity, because names are read from the database after the
  search. Verify-against-identity and every identity endpoint read the database directly and are
  always current.

Scores: an identity's score is its best match, the highest cosine similarity between the probe and
any of its templates; identities are ranked by it.

Memory: the templates are one float32 matrix (N x D x 4 bytes: 512 MB for a million 128-D templates)
in a buffer that grows by doubling. Adding templates writes rows past the end and costs only those
rows; removing some copies the kept rows into a new buffer (one pass over the matrix). The search
core, ``TemplateIndex``, is the runtime's (facever.model.matching) and needs no database.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from sqlalchemy import select

from facever.app import metrics
from facever.app.db.models import Face, GalleryChange, GalleryState
from facever.app.db.session import Database
from facever.app.stored_embeddings import ModelRef, TemplateCodec
from facever.model.matching import Match, TemplateIndex

log = logging.getLogger("facever.gallery")

_IN_CHUNK = 1000  # ids per IN (...) query


class Gallery:
    def __init__(self, database: Database, model: ModelRef, dim: int, codec: TemplateCodec | None = None):
        self.database = database
        self.model = model
        self.dim = dim
        self.codec = codec or TemplateCodec()  # templates are decrypted once, as they are loaded
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

    def catch_up(self) -> None:
        """Before a search: one single-row read when nothing changed."""
        self.sync()

    def after_write(self) -> None:
        """The replica that made a change applies it before answering."""
        self.sync()

    def _reload(self, session) -> None:
        # The version is read before the templates: changes committed in between are in the
        # templates already and are applied again on the next sync, which is harmless (idempotent).
        version = session.scalar(select(GalleryState.version).where(GalleryState.id == 1))
        rows = session.execute(
            select(Face.id, Face.identity_id, Face.embedding, Face.key_id)
            .where(Face.model_name == self.model.name, Face.model_version == self.model.version)
            .order_by(Face.id)
        ).all()
        self.index.replace(
            self.codec.open(rows, self.dim),
            np.array([row.id for row in rows], np.int64),
            np.array([row.identity_id for row in rows], np.int64),
        )
        self.version = version
        log.info("gallery loaded: %d templates of %s %s (version %s)", self.size, *self._model_pair, version)

    def _apply_changes(self, session) -> bool:
        """Apply the logged changes since self.version; False when the log no longer reaches back."""
        assert self.version is not None, "sync() loads the whole gallery first"
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

        new_rows = []
        for start in range(0, len(added), _IN_CHUNK):
            # Faces deleted since they were logged are simply not found; their removal is logged too.
            new_rows += session.execute(
                select(Face.id, Face.identity_id, Face.embedding, Face.key_id).where(
                    Face.id.in_(added[start : start + _IN_CHUNK]),
                    Face.model_name == self.model.name,
                    Face.model_version == self.model.version,
                )
            ).all()
        templates = self.codec.open(new_rows, self.dim)
        self.index.remove(removed_faces, removed_identities)
        self.index.add(
            templates, np.array([r.id for r in new_rows], np.int64), [r.identity_id for r in new_rows]
        )
        self.version = changes[-1].version
        return True

    @property
    def _model_pair(self) -> tuple[str, str]:
        return self.model.name, self.model.version

    # -- searching ---------------------------------------------------------------------------------

    def search(self, probe: np.ndarray, top_k: int, min_score: float | None) -> list[Match]:
        """See ``TemplateIndex.search``."""
        return self.index.search(probe, top_k, min_score)
