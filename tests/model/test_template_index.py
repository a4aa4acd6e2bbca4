"""The gallery's in-memory search core without a database: appends in place, removals copy, and a
snapshot that a search already holds never changes under it."""

from __future__ import annotations

import numpy as np

from facever.model.matching import TemplateIndex

DIM = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_adds_grow_the_index_and_leave_earlier_snapshots_alone():
    rng = np.random.default_rng(0)
    index = TemplateIndex(DIM)
    first = unit(rng, 5)
    index.add(first, np.arange(5), [1, 1, 2, 2, 3])
    held = index._snapshot  # what a running search would hold
    index.add(unit(rng, 3000), np.arange(5, 3005), np.arange(3000) // 3 + 10)  # grows the buffers

    assert index.size == 3005 and index.identity_count == 3 + 1000
    assert held.matrix.shape == (5, DIM) and np.array_equal(held.matrix, first)
    index.add(first[:2], [0, 1], [1, 1])  # already held (a reload got them first): skipped
    assert index.size == 3005
    best = index.search(first[2], top_k=3, min_score=None)[0]
    assert (best.identity_id, best.face_id) == (2, 2)


def test_removals_drop_faces_and_identities_without_touching_held_snapshots():
    rng = np.random.default_rng(1)
    index = TemplateIndex(DIM)
    vectors = unit(rng, 6)
    index.replace(vectors, np.arange(6), [1, 1, 2, 2, 3, 3])
    held = index._snapshot

    index.remove(face_ids=[2], identity_ids=[1])
    assert index.size == 3 and index.identity_count == 2
    assert index.search(vectors[2], top_k=5, min_score=0.999) == []
    assert index.search(vectors[0], top_k=5, min_score=0.999) == []
    assert [m.face_id for m in index.search(vectors[3], top_k=1, min_score=None)] == [3]
    assert np.array_equal(held.matrix, vectors) and list(held.face_ids) == list(range(6))
    index.remove(face_ids=[99])  # nothing held: nothing changes
    assert index.size == 3
    assert index.nbytes == 3 * (DIM * 4 + 8 + 8)
