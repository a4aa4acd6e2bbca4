"""Cross-request batching of the embedding (facever.model.batching)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from facever.app.core.config import shipped_model_dir
from facever.model.batching import Batcher
from facever.model.embedding import Embedder

LONG_WINDOW_S = 60.0  # a call that waited for it would fail the result(timeout=...) below
TIMEOUT_S = 20.0


class Recorder:
    """A stand-in network: row i -> [sum of row i], and the size of every batch it was given."""

    def __init__(self):
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        with self.lock:
            self.sizes.append(len(crops))
        return crops.reshape(len(crops), -1).sum(1, keepdims=True).astype(np.float32)


def crops(*values: int) -> np.ndarray:
    return np.array([[value, 0] for value in values], np.int64)


def announced_requests(batcher: Batcher, payloads: list[np.ndarray], timeout: float = TIMEOUT_S):
    """One thread per payload; every caller is announced to the batcher before any hands its crops in."""
    announced = threading.Barrier(len(payloads))

    def request(payload: np.ndarray) -> np.ndarray:
        with batcher.coming() as ticket:
            announced.wait()
            return ticket.submit(payload)

    with ThreadPoolExecutor(len(payloads)) as pool:
        return [future.result(timeout=timeout) for future in [pool.submit(request, p) for p in payloads]]


def test_a_lone_request_does_not_wait_for_the_window():
    recorder = Recorder()
    batcher = Batcher(recorder, LONG_WINDOW_S, max_batch=8)
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(batcher.submit, crops(3, 4)).result(timeout=TIMEOUT_S).ravel().tolist() == [3, 4]
        with batcher.coming() as ticket:  # announced, and the only one: runs as soon as it arrives
            result = pool.submit(ticket.submit, crops(5)).result(timeout=TIMEOUT_S)
        assert result.ravel().tolist() == [5]
    assert recorder.sizes == [2, 1]
    batcher.close()


def test_announced_requests_share_one_run_and_get_their_own_rows():
    recorder = Recorder()
    batcher = Batcher(recorder, LONG_WINDOW_S, max_batch=64)
    callers = 6
    results = announced_requests(batcher, [crops(10 * i, 10 * i + 1) for i in range(callers)])
    for i, result in enumerate(results):
        assert result.ravel().tolist() == [10 * i, 10 * i + 1]
    assert recorder.sizes == [2 * callers]  # one run for all, not six
    assert (batcher.batches, batcher.items) == (1, 2 * callers)
    batcher.close()


def test_a_request_that_gives_up_releases_the_batch():
    recorder = Recorder()
    batcher = Batcher(recorder, LONG_WINDOW_S, max_batch=64)
    quitter_in = threading.Event()
    release_quitter = threading.Event()

    def quitter() -> None:
        with batcher.coming():  # e.g. its photo had no face: it never embeds
            quitter_in.set()
            release_quitter.wait(TIMEOUT_S)

    def worker() -> np.ndarray:
        quitter_in.wait(TIMEOUT_S)
        with batcher.coming() as ticket:
            return ticket.submit(crops(7))

    with ThreadPoolExecutor(2) as pool:
        pool.submit(quitter)
        result = pool.submit(worker)
        with pytest.raises(TimeoutError):
            result.result(timeout=0.3)  # waiting for the quitter's crops, within the window
        release_quitter.set()
        assert result.result(timeout=TIMEOUT_S).ravel().tolist() == [7]
    batcher.close()


def test_batches_stop_at_max_batch():
    recorder = Recorder()
    batcher = Batcher(recorder, LONG_WINDOW_S, max_batch=4)
    callers = 5
    results = announced_requests(batcher, [crops(i, i) for i in range(callers)])
    assert [r.ravel().tolist() for r in results] == [[i, i] for i in range(callers)]
    assert max(recorder.sizes) <= 4 and sum(recorder.sizes) == 2 * callers
    batcher.close()


def test_a_failed_run_fails_its_callers_and_the_batcher_goes_on():
    calls = []

    def flaky(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return batch.astype(np.float32)

    batcher = Batcher(flaky, 0.0, max_batch=8)
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher.submit(crops(1))
    assert batcher.submit(crops(2)).ravel().tolist() == [2, 0]
    batcher.close()


def test_batched_embeddings_equal_unbatched_ones():
    """The real network: faces embedded together in one run get the embeddings they get alone."""
    embedder = Embedder(shipped_model_dir(), device="cpu", threads=1)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (12, embedder.size, embedder.size, 3), dtype=np.uint8)
    alone = np.concatenate([embedder.embed(face[None]) for face in faces])
    batcher = Batcher(embedder.embed, LONG_WINDOW_S, max_batch=64)
    batched = np.concatenate(announced_requests(batcher, [faces[2 * i : 2 * i + 2] for i in range(6)], 60))
    assert batcher.batches == 1
    np.testing.assert_array_equal(batched, alone)
    batcher.close()


def test_batches_run_side_by_side():
    """A request arriving while a batch runs leads its own batch at once: it does not queue behind it."""
    first_running, release_first = threading.Event(), threading.Event()

    def embed(batch: np.ndarray) -> np.ndarray:
        if batch[0, 0] == 1:
            first_running.set()
            release_first.wait(TIMEOUT_S)
        return batch.astype(np.float32)

    batcher = Batcher(embed, 0.0, max_batch=8)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.submit, crops(1))
        assert first_running.wait(TIMEOUT_S)
        second = pool.submit(batcher.submit, crops(2))
        assert second.result(timeout=TIMEOUT_S).ravel().tolist() == [2, 0]  # while the first still runs
        assert not first.done()
        release_first.set()
        assert first.result(timeout=TIMEOUT_S).ravel().tolist() == [1, 0]
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(crops(3))
