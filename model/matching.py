"""Comparing faces, the one implementation that the service, the evaluation, the calibration, the
training validation and the benchmarks share.

* The score of two faces is the cosine similarity of their embeddings (unit vectors): -1..1, higher is
  more alike. dlib's peer is scored the same way on its own metric: minus the Euclidean distance.
* The decision: the same person when ``score >= threshold`` (``is_match``).
* Thresholds read off impostor scores for a false accept rate (``threshold_at_far``).
* ``TemplateIndex``: many templates in memory and the search over them (identify, the gallery
  benchmark), each identity scored by its best template.

numpy only: no torch, no database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Protocol, overload

import numpy as np
import numpy.typing as npt

Metric = Literal["cosine", "euclidean"]


class KeyPair(Protocol):
    """What ``pair_scores`` needs of a pair (training.evaluation.lfw.Pair has it)."""

    @property
    def first(self) -> str: ...

    @property
    def second(self) -> str: ...


def similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine similarity of unit vectors along the last axis: (..., D) x (..., D) -> (...). NaN stays NaN."""
    return np.sum(np.asarray(first) * np.asarray(second), axis=-1)


def similarities(probe: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Cosine similarity of one probe (D,) with every row of ``templates`` (N, D) -> (N,) float32."""
    return np.asarray(templates, np.float32) @ np.asarray(probe, np.float32)


def negative_distance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Minus the Euclidean distance along the last axis (dlib's metric as a score: higher = more alike)."""
    return -np.linalg.norm(np.asarray(first) - np.asarray(second), axis=-1)


SCORES: dict[Metric, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "cosine": similarity,
    "euclidean": negative_distance,
}


@overload
def is_match(score: float, threshold: float) -> bool: ...
@overload
def is_match(score: np.ndarray, threshold: float) -> np.ndarray: ...
def is_match(score: float | np.ndarray, threshold: float) -> bool | np.ndarray:
    """The decision: the same person when the score reaches the threshold. NaN (no face) never matches."""
    if isinstance(score, np.ndarray):
        return score >= threshold
    return bool(score >= threshold)


def best_match(probe: np.ndarray, templates: np.ndarray) -> tuple[int, float]:
    """The row of ``templates`` most like ``probe`` and its score (verify against an identity)."""
    scores = similarities(probe, templates)
    best = int(np.argmax(scores))
    return best, float(scores[best])


def pair_scores(
    embeddings: Mapping[str, np.ndarray], pairs: Sequence[KeyPair], metric: Metric = "cosine"
) -> np.ndarray:
    """The score of each pair of keys; NaN where a photo has no embedding (a NaN vector)."""
    first = np.stack([embeddings[p.first] for p in pairs])
    second = np.stack([embeddings[p.second] for p in pairs])
    return SCORES[metric](first, second)


def all_pairs(
    embeddings: np.ndarray, people: Sequence[str], metric: Metric = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """Score and same-person flag of every unordered pair of distinct rows (all-vs-all)."""
    gram = embeddings @ embeddings.T
    if metric == "euclidean":
        squared = (embeddings * embeddings).sum(1)
        gram = -np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * gram, 0.0))
    first, second = np.triu_indices(len(people), k=1)
    names = np.asarray(people)
    return gram[first, second], names[first] == names[second]


def threshold_at_far(impostor_scores: np.ndarray, far: float) -> float:
    """The smallest threshold at which at most ``far`` of the impostor scores match."""
    impostors = np.asarray(impostor_scores)
    allowed = int(np.floor(far * len(impostors)))
    k = len(impostors) - allowed - 1  # the highest impostor score that must not match
    return float(np.nextafter(np.partition(impostors, k)[k], np.inf))


def match_rate(scores: np.ndarray, threshold: float) -> float:
    """The share of ``scores`` that match at ``threshold`` (a TAR on genuine, a FAR on impostor scores)."""
    return float(np.mean(is_match(np.asarray(scores), threshold)))


# -- the template index --------------------------------------------------------------------------


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
        scores = similarities(probe, snapshot.matrix)
        candidates = np.arange(len(scores))
        if min_score is not None:
            candidates = np.flatnonzero(is_match(scores, min_score))
        ranked = best_per_identity(scores, snapshot.identity_ids, candidates, top_k)
        return [
            Match(int(snapshot.identity_ids[i]), int(snapshot.face_ids[i]), float(scores[i])) for i in ranked
        ]


def best_per_identity(
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
