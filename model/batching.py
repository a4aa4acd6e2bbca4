"""Cross-request micro-batching of the embedding network.

Each request thread hands its aligned crops to ``EmbeddingBatcher.embed`` (or a ticket's ``embed``)
and gets its own embeddings back. The first request to arrive leads a batch: it waits up to
``window_s`` for the crops of other requests, takes at most ``max_batch`` faces, runs them in one
onnxruntime call in its own thread and hands every request its rows. Requests that arrive while that
batch runs elect the next leader, so batches run side by side rather than one after another, and no
thread of its own shuttles work between threads. A GPU runs 64 faces in little more time than one.

A request never waits for company that is not coming: a caller announces itself with ``coming()``
before it decodes and detects, and hands its crops in through the ticket it gets. When every
announced caller has handed in its crops (or given up), the batch runs at once. So a lone request
runs as soon as it arrives, and the window only bounds the wait for requests still being detected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class _Job:
    crops: np.ndarray
    embeddings: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class EmbeddingBatcher:
    """Runs ``embed`` (crops (N, ...) -> embeddings (N, D)) on the crops of several callers at once."""

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray], window_s: float, max_batch: int):
        if window_s < 0 or max_batch < 1:
            raise ValueError("window_s must be >= 0 and max_batch >= 1")
        self._embed = embed
        self.window_s = window_s
        self.max_batch = max_batch
        self._coming = 0  # announced callers that have not handed in their crops yet
        self._queue: list[_Job] = []  # handed in, not yet taken into a batch; the head leads
        self._leader: _Job | None = None
        self._ready = threading.Condition()
        self._closed = False
        self.batches = 0  # onnxruntime runs made, and the faces in them: for metrics and tests
        self.faces = 0

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """The embeddings of ``crops``, computed in a batch with whatever else arrives meanwhile."""
        return self._submit(np.asarray(crops), arrived=False)

    @contextmanager
    def coming(self) -> Iterator[Ticket]:
        """Announce crops that are on their way; a batch waits (within the window) for them."""
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

    def close(self) -> None:
        """Refuse further work (batches under way finish)."""
        with self._ready:
            self._closed = True

    def _submit(self, crops: np.ndarray, arrived: bool) -> np.ndarray:
        job = _Job(crops)
        with self._ready:
            if arrived:
                self._coming -= 1
            self._ready.notify_all()  # a leader may be waiting for these crops, or for none
            if self._closed:
                raise RuntimeError("the embedding batcher is closed")
            if not len(crops):
                job.done = True
            else:
                self._queue.append(job)
                if self._leader is None:
                    self._leader = job
        if job.done:
            return self._embed(crops)
        while True:
            with self._ready:
                while not job.done and self._leader is not job:
                    self._ready.wait()
                if job.done:
                    break
                jobs = self._gather()
            self._run(jobs)  # this job is the head of the queue, so it is in this batch
        if job.error is not None:
            raise job.error
        assert job.embeddings is not None
        return job.embeddings

    def _gather(self) -> list[_Job]:
        """As the leader (lock held): wait within the window for announced crops, take a batch from the
        head of the queue and hand the lead to the first request left behind."""
        deadline = time.monotonic() + self.window_s
        while self._faces_queued() < self.max_batch and self._coming > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._ready.wait(left)
        taken, faces = 0, 0
        for job in self._queue:
            if taken and faces + len(job.crops) > self.max_batch:
                break
            taken += 1
            faces += len(job.crops)
        jobs, self._queue = self._queue[:taken], self._queue[taken:]
        self._leader = self._queue[0] if self._queue else None
        self._ready.notify_all()
        return jobs

    def _faces_queued(self) -> int:
        return sum(len(job.crops) for job in self._queue)

    def _run(self, jobs: list[_Job]) -> None:
        error: BaseException | None = None
        try:
            embeddings = self._embed(np.concatenate([job.crops for job in jobs]))
        except BaseException as failure:  # noqa: BLE001 - every caller in the batch gets the failure
            error = failure
        with self._ready:
            start = 0
            for job in jobs:
                if error is None:
                    job.embeddings = embeddings[start : start + len(job.crops)]
                    start += len(job.crops)
                job.error = error
                job.done = True
            if error is None:
                self.batches += 1
                self.faces += start
            self._ready.notify_all()


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
