"""Cross-request micro-batching of the embedding network.

Each request thread hands its aligned crops to ``EmbeddingBatcher.embed`` and blocks; one batching
thread gathers the crops of the requests that arrive within ``window_s`` of the first into one
onnxruntime run (at most ``max_batch`` faces) and hands each request its own rows back. A GPU runs
64 faces in little more time than one, so concurrent requests share its cost.

A request never waits for company that is not coming: a caller announces itself with ``coming()``
before it decodes and detects, and hands its crops in through the ticket it gets. When every
announced caller has handed in its crops (or given up), the batch runs at once. So a lone request
runs as soon as it arrives, and the window only bounds the wait for requests still being detected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("facever.model")


@dataclass
class _Job:
    crops: np.ndarray
    result: Future = field(default_factory=Future)


class EmbeddingBatcher:
    """Runs ``embed`` (crops (N, ...) -> embeddings (N, D)) on the crops of several callers at once."""

    def __init__(
        self,
        embed: Callable[[np.ndarray], np.ndarray],
        window_s: float,
        max_batch: int,
    ):
        if window_s < 0 or max_batch < 1:
            raise ValueError("window_s must be >= 0 and max_batch >= 1")
        self._embed = embed
        self.window_s = window_s
        self.max_batch = max_batch
        self._coming = 0  # announced callers that have not handed in their crops yet
        self._queue: list[_Job] = []
        self._ready = threading.Condition()
        self._closed = False
        self.batches = 0  # onnxruntime runs made, and the faces in them: for metrics and tests
        self.faces = 0
        self._thread = threading.Thread(target=self._loop, name="facever-batcher", daemon=True)
        self._thread.start()

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """The embeddings of ``crops``, computed in a batch with whatever else arrives meanwhile."""
        return self._submit(np.asarray(crops), arrived=False)

    @contextmanager
    def coming(self) -> Iterator[Ticket]:
        """Announce crops that are on their way; the batch waits (within the window) for them."""
        ticket = Ticket(self)
        with self._ready:
            self._coming += 1
        try:
            yield ticket
        finally:
            if not ticket.arrived:
                with self._ready:
                    self._coming -= 1
                    self._ready.notify_all()

    def _submit(self, crops: np.ndarray, arrived: bool) -> np.ndarray:
        job = _Job(crops)
        with self._ready:
            if arrived:
                self._coming -= 1
            if len(crops) and not self._closed:
                self._queue.append(job)
            self._ready.notify_all()
        if not len(crops):
            return self._embed(crops)
        if self._closed:
            raise RuntimeError("the embedding batcher is closed")
        return job.result.result()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if self._closed and not self._queue:
                    return
                deadline = time.monotonic() + self.window_s
                while not self._closed and self._faces_queued() < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._coming <= 0:
                        break
                    self._ready.wait(left)
                jobs = self._take()
            self._run(jobs)

    def _faces_queued(self) -> int:
        return sum(len(job.crops) for job in self._queue)

    def _take(self) -> list[_Job]:
        """Jobs from the head of the queue up to max_batch faces (always at least one job)."""
        taken, faces = 0, 0
        for job in self._queue:
            if taken and faces + len(job.crops) > self.max_batch:
                break
            taken += 1
            faces += len(job.crops)
        jobs, self._queue = self._queue[:taken], self._queue[taken:]
        return jobs

    def _run(self, jobs: list[_Job]) -> None:
        try:
            embeddings = self._embed(np.concatenate([job.crops for job in jobs]))
        except BaseException as error:  # noqa: BLE001 - every caller gets the failure, the thread lives on
            for job in jobs:
                job.result.set_exception(error)
            return
        self.batches += 1
        self.faces += len(embeddings)
        start = 0
        for job in jobs:
            job.result.set_result(embeddings[start : start + len(job.crops)])
            start += len(job.crops)


class Ticket:
    """A caller's place in the next batch: ``embed`` once, from the thread that announced it."""

    def __init__(self, batcher: EmbeddingBatcher):
        self._batcher = batcher
        self.arrived = False

    def embed(self, crops: np.ndarray) -> np.ndarray:
        if self.arrived:
            raise RuntimeError("a ticket embeds once")
        self.arrived = True
        return self._batcher._submit(np.asarray(crops), arrived=True)
