"""Request batching: the images of concurrent requests on one process go through the graph in one run.

No thread of its own: the first caller to find the graph idle runs the next batch for everyone
queued (a leader), the others wait for their results. It waits up to ``wait_s`` for company only
while another request of this process is still decoding its images (``preparing``), or while fewer
are queued than were here at once during the last run (answered, a service's clients come back one
by one through HTTP), so a lone client never waits; under load, requests queue while the graph is
busy and leave together. An
answer is the same in any batch (static int8, DESIGN.md), and a run that fails is retried request
by request, so one request's failure never fails its neighbours.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

RunGraph = Callable[[list[str], np.ndarray], list[np.ndarray]]


@dataclass(frozen=True)
class Batching:
    """``BATCH_WAIT_MS`` (0: every request runs alone) and ``BATCH_MAX_IMAGES`` per gathered run."""

    wait_ms: float = 0.0
    max_images: int = 8


@dataclass
class _Job:
    names: list[str]
    batch: np.ndarray
    results: list[np.ndarray] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class Gatherer:
    """One per loaded model; ``run`` is the graph's only entry, ``preparing`` brackets decoding."""

    def __init__(self, run: RunGraph, *, wait_s: float, max_images: int) -> None:
        self._run, self.wait_s, self.max_images = run, wait_s, max_images
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._preparing = 0
        self._running = 0  # requests in the run under way
        self._peak = 0  # the most requests in this process at once since the last run began
        self._busy = False
        self.runs: deque[int] = deque(maxlen=1000)  # images per graph run: what batching achieved
        self.total_runs = self.total_images = 0  # since the model loaded: a reader takes differences

    @contextmanager
    def preparing(self) -> Iterator[None]:
        with self._cond:
            self._preparing += 1
            self._peak = max(self._peak, self._known())
        try:
            yield
        finally:
            with self._cond:
                self._preparing -= 1
                self._cond.notify_all()

    def run(self, names: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
        job = _Job(list(names), batch)
        with self._cond:
            self._queue.append(job)
            self._peak = max(self._peak, self._known())
            self._cond.notify_all()
            while not job.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                jobs = self._gather()
                self._cond.release()
                try:
                    self._execute(jobs)
                finally:
                    self._cond.acquire()
                    for unfinished in (j for j in jobs if not j.done):  # the leader was interrupted
                        unfinished.error, unfinished.done = RuntimeError("the batched run was interrupted"), True
                    self._busy, self._running = False, 0
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        return job.results

    def _gather(self) -> list[_Job]:
        """Holding the lock: while there is room, wait for those decoding, and for as many requests as were
        here at once during the last run (answered, they come back), then take the queue's head."""
        deadline, expected = time.monotonic() + self.wait_s, self._peak
        while (
            (self._preparing or len(self._queue) < expected)
            and self._queued() < self.max_images
            and (left := deadline - time.monotonic()) > 0
        ):
            self._cond.wait(left)
        jobs = [self._queue.popleft()]
        images = len(jobs[0].batch)
        while self._queue and images + len(self._queue[0].batch) <= self.max_images:
            images += len(self._queue[0].batch)
            jobs.append(self._queue.popleft())
        self._running = len(jobs)
        self._peak = self._known()
        return jobs

    def _known(self) -> int:
        return self._preparing + len(self._queue) + self._running

    def _queued(self) -> int:
        return sum(len(job.batch) for job in self._queue)

    def _execute(self, jobs: list[_Job]) -> None:
        names = list(dict.fromkeys(name for job in jobs for name in job.names))
        try:
            outputs = self._run(names, np.concatenate([job.batch for job in jobs]))
        except Exception as failure:  # noqa: BLE001 - handed to the request's own thread, which raises it
            if len(jobs) > 1:  # each alone: only the request that fails gets the error
                for job in jobs:
                    self._execute([job])
            else:
                jobs[0].error, jobs[0].done = failure, True
            return
        images = sum(len(job.batch) for job in jobs)
        self.runs.append(images)
        self.total_runs, self.total_images = self.total_runs + 1, self.total_images + images
        start = 0
        for job in jobs:
            rows = slice(start, start + len(job.batch))
            job.results, job.done = [outputs[names.index(name)][rows] for name in job.names], True
            start = rows.stop
