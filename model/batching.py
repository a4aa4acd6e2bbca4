"""Cross-request micro-batching: of the embedding network (aligned crops -> embeddings) and of face
detection (photos -> their faces).

Each request thread hands its items (crops, or photos) to ``Batcher.submit`` (or a ticket's
``submit``) and gets its own results back. The first request to arrive leads a batch: it waits up to
``window_s`` for the items of other requests, takes at most ``max_batch`` items, runs them in one call
in its own thread and hands every request its results. Requests that arrive while that batch runs
elect the next leader, so batches run side by side rather than one after another, and no thread of
its own shuttles work between threads. A GPU runs 64 faces in little more time than one.

A request never waits for company that is not coming: a caller announces itself with ``coming()``
before it decodes (and detects), and hands its items in through the ticket it gets. When every
announced caller has handed in its items (or given up), the batch runs at once. So a lone request
runs as soon as it arrives, and the window only bounds the wait for requests still on their way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

# Items and results are numpy arrays (crops, embeddings) or lists (photos, their faces): anything
# with len() and slices.
Items = Any


@dataclass(eq=False)
class _Job:
    items: Items
    results: Items | None = None
    error: BaseException | None = None
    done: bool = False


class Batcher:
    """Runs ``run`` (N items -> N results, in order) on the items of several callers at once; ``join``
    puts several callers' items into one sequence (numpy arrays are concatenated)."""

    def __init__(
        self,
        run: Callable[[Items], Items],
        window_s: float,
        max_batch: int,
        join: Callable[[list[Items]], Items] = np.concatenate,
    ):
        if window_s < 0 or max_batch < 1:
            raise ValueError("window_s must be >= 0 and max_batch >= 1")
        self._run_batch = run
        self._join = join
        self.window_s = window_s
        self.max_batch = max_batch
        self._coming = 0  # announced callers that have not handed in their items yet
        self._queue: list[_Job] = []  # handed in, not yet taken into a batch; the head leads
        self._leader: _Job | None = None
        self._ready = threading.Condition()
        self._closed = False
        self.batches = 0  # runs made, and the items in them: for metrics and tests
        self.items = 0

    def submit(self, items: Items) -> Items:
        """The results for ``items``, computed in a batch with whatever else arrives meanwhile."""
        return self._submit(items, arrived=False)

    @contextmanager
    def coming(self) -> Iterator[Ticket]:
        """Announce items that are on their way; a batch waits (within the window) for them."""
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

    def _submit(self, items: Items, arrived: bool) -> Items:
        job = _Job(items)
        with self._ready:
            if arrived:
                self._coming -= 1
            self._ready.notify_all()  # a leader may be waiting for these items, or for none
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if not len(items):
                job.done = True
            else:
                self._queue.append(job)
                if self._leader is None:
                    self._leader = job
        if job.done:
            return self._run_batch(items)
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
        assert job.results is not None
        return job.results

    def _gather(self) -> list[_Job]:
        """As the leader (lock held): wait within the window for announced items, take a batch from the
        head of the queue and hand the lead to the first request left behind."""
        deadline = time.monotonic() + self.window_s
        while self._items_queued() < self.max_batch and self._coming > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._ready.wait(left)
        taken, items = 0, 0
        for job in self._queue:
            if taken and items + len(job.items) > self.max_batch:
                break
            taken += 1
            items += len(job.items)
        jobs, self._queue = self._queue[:taken], self._queue[taken:]
        self._leader = self._queue[0] if self._queue else None
        self._ready.notify_all()
        return jobs

    def _items_queued(self) -> int:
        return sum(len(job.items) for job in self._queue)

    def _run(self, jobs: list[_Job]) -> None:
        error: BaseException | None = None
        try:
            results = self._run_batch(self._join([job.items for job in jobs]))
        except BaseException as failure:  # noqa: BLE001 - every caller in the batch gets the failure
            error = failure
        with self._ready:
            start = 0
            for job in jobs:
                if error is None:
                    job.results = results[start : start + len(job.items)]
                    start += len(job.items)
                job.error = error
                job.done = True
            if error is None:
                self.batches += 1
                self.items += start
            self._ready.notify_all()


def join_lists(parts: list[Sequence]) -> list:
    """``join`` for items that are not arrays (photos of different sizes)."""
    return [item for part in parts for item in part]


class Ticket:
    """A caller's place in the next batch: ``submit`` once, from the thread that announced it."""

    def __init__(self, batcher: Batcher):
        self._batcher = batcher
        self.arrived = False

    def submit(self, items: Items) -> Items:
        if self.arrived:
            raise RuntimeError("a ticket submits once")
        self.arrived = True
        return self._batcher._submit(items, arrived=True)
