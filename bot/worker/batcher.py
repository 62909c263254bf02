"""Many jobs in one worker process, stepped together: the throughput of a GPU comes from batches.

Jobs join between steps and leave when they finish, fail or are cancelled. Each round gives every
active job one optimiser step: jobs whose current level has the same shape share one VGG-19
pass (bot/engine/painting.py), others form batches of their own. A job is admitted only while
the estimated memory of the active jobs leaves room for it (and while fewer than `max_jobs`
run). An out-of-memory error splits the batch and tries the halves; a job that does not fit even
alone fails with out_of_memory, and the others go on. A cancelled or failed job leaves at the
end of the step in which it was seen; it never holds the others back.

Jobs are read (their pictures decoded, a clip's frames too) on a reader thread, never in the
loop that steps the others: a long clip delays no one's progress, and a job cancelled while it
is read stops at its next frame and ends alone. A finished job's pixels are taken off the device
in the loop, and its result encoded (PNG, GIF, MP4: tens to hundreds of ms) on an encoder thread
while the loop steps the others.

The same Batcher serves the local pool's worker process; `add` may be called from any thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.engine.painting import Painting, out_of_memory, step_together
from bot.engine.progress import Result
from bot.protocol.messages import Event, Job, JobCancelled, JobStarted, Terminal
from bot.worker.runner import JobInputs, JobRunner

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    job: Job
    emit: Callable[[Event], None]
    finish: Callable[[Terminal], None]
    should_cancel: Callable[[], bool]
    painted: Callable[[], None] | None = None  # told when only the encoding is left
    inputs: JobInputs | None = None  # read when it arrives: its pictures and memory plan
    painting: Painting | None = None  # set up when it is admitted


class Batcher:
    def __init__(
        self,
        runner: JobRunner,
        *,
        max_jobs: int = 1,
        memory_budget: int | None = None,
        name: str | None = None,
    ):
        self.runner = runner
        # the worker's name: JobStarted is reported when a job is admitted, not when it arrives
        # (a job may wait here for memory); None: the caller reports it
        self.name = name
        self.max_jobs = max(1, max_jobs)
        runner.stats.batch_size = self.max_jobs
        self.memory_budget = memory_budget  # bytes the active jobs may take; None: no limit
        self._inbox: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()  # to be read
        self._ready: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()  # read: to admit
        self._waiting: list[_Entry] = []
        self._active: list[_Entry] = []
        # finished: (entry, its result, whether its style targets came from the cache)
        self._finished: queue.SimpleQueue[tuple[_Entry, Result, bool] | None] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self.largest_batch = 0  # for tests and benchmarks

    def add(
        self,
        job: Job,
        emit: Callable[[Event], None],
        finish: Callable[[Terminal], None],
        should_cancel: Callable[[], bool],
        painted: Callable[[], None] | None = None,
    ) -> None:
        """Queue a job; its events go to `emit`, its terminal event to `finish` (exactly once),
        and `painted()` is called once it has finished painting (its result waits to be encoded)."""
        self._inbox.put(_Entry(job, emit, finish, should_cancel, painted))

    def stop(self) -> None:
        self._stopped.set()
        self._inbox.put(None)

    def run(self) -> None:
        """The loop; returns after `stop()` (jobs still active are left as they are)."""
        reader = threading.Thread(target=self._read_all, name="stylebot-reader", daemon=True)
        reader.start()
        encoder = threading.Thread(target=self._encode_all, name="stylebot-encoder", daemon=True)
        encoder.start()
        while not self._stopped.is_set():
            self._take_new(block=not self._active and not self._waiting)
            self._drop_cancelled()
            self._admit()
            if self._active:
                self._round()
        self._finished.put(None)
        encoder.join()  # the results already painted are delivered

    # --- inside -----------------------------------------------------------------------------

    def _read_all(self) -> None:
        """The reader thread: each new job's pictures decoded and its memory planned, then
        handed to the stepping loop; a job that cannot run (or is cancelled meanwhile) ends
        here."""
        while (entry := self._inbox.get()) is not None:
            if entry.should_cancel():
                entry.finish(JobCancelled(job_id=entry.job.id))
                continue
            try:
                entry.inputs = self.runner.read(entry.job, entry.should_cancel)
            except Exception as exc:
                entry.finish(self.runner.ending(entry.job, exc))
                continue
            self._ready.put(entry)
        self._ready.put(None)

    def _encode_all(self) -> None:
        """The encoder thread: each finished job's result encoded and its ending delivered. A job
        cancelled while it waited here ends cancelled, unencoded (the cancel is answered)."""
        while (finished := self._finished.get()) is not None:
            entry, result, cache_hit = finished
            if entry.should_cancel():
                entry.finish(JobCancelled(job_id=entry.job.id))
                continue
            notes = entry.inputs.notes if entry.inputs else ()
            try:
                ending = self.runner.done(entry.job, result, cache_hit, notes)
            except Exception as exc:
                ending = self.runner.ending(entry.job, exc)
            entry.finish(ending)

    def _take_new(self, *, block: bool) -> None:
        """Jobs read since the last round join the waiting line."""
        try:
            entry = self._ready.get(block=block)
            while True:
                if entry is not None:
                    self._waiting.append(entry)
                entry = self._ready.get_nowait()
        except queue.Empty:
            pass

    def _drop_cancelled(self) -> None:
        """A waiting job that was cancelled ends now, not when it would have been admitted."""
        for entry in [e for e in self._waiting if e.should_cancel()]:
            self._waiting.remove(entry)
            entry.finish(JobCancelled(job_id=entry.job.id))

    def _admit(self) -> None:
        while self._waiting and len(self._active) < self.max_jobs:
            entry = self._waiting[0]
            if self._active and self.memory_budget is not None:
                used = sum(planned_bytes(e) for e in self._active)
                if used + planned_bytes(entry) > self.memory_budget:
                    return  # it waits for room (alone, it is always admitted)
            self._waiting.pop(0)
            if entry.should_cancel():
                entry.finish(JobCancelled(job_id=entry.job.id))
                continue
            if self.name is not None:
                entry.emit(
                    JobStarted(
                        job_id=entry.job.id, worker=self.name, device=self.runner.device_name
                    )
                )
            try:
                assert entry.inputs is not None
                entry.painting = self.runner.start(
                    entry.job, entry.inputs, entry.emit, entry.should_cancel
                )
            except Exception as exc:
                entry.finish(self.runner.ending(entry.job, exc))
                continue
            self._active.append(entry)

    def _round(self) -> None:
        groups: dict[Any, list[_Entry]] = {}
        for entry in self._active:
            assert entry.painting is not None  # active: admitted and not ended
            groups.setdefault(entry.painting.shape_key, []).append(entry)
        for group in groups.values():
            self._step(group)
        still = []
        for entry in self._active:
            if entry.painting is None:
                continue  # it ended in this round
            if entry.painting.done:
                painting, entry.painting = entry.painting, None
                try:  # the pixels leave the device here; the encoding waits for no one
                    result = painting.result()
                except Exception as exc:
                    entry.finish(self.runner.ending(entry.job, exc))
                else:
                    if entry.painted is not None:
                        entry.painted()
                    self._finished.put((entry, result, painting.style_cache_hits > 0))
            else:
                still.append(entry)
        self._active = still

    def _step(self, group: list[_Entry]) -> None:
        self.largest_batch = max(self.largest_batch, len(group))
        began = time.perf_counter()
        try:
            failed = step_together([e.painting for e in group])  # type: ignore[misc]
        except Exception as exc:
            if not out_of_memory(exc):
                raise
            self.runner.release_memory()
            if len(group) == 1:
                self._end(group[0], exc)
                return
            log.warning("out of memory with a batch of %d: splitting it", len(group))
            half = len(group) // 2
            self._step(group[:half])
            self._step(group[half:])
            return
        self.runner.stats.stepped(len(group), time.perf_counter() - began)
        by_painting = {id(e.painting): e for e in group}
        for painting, exc in failed:
            self._end(by_painting[id(painting)], exc)

    def _end(self, entry: _Entry, exc: BaseException) -> None:
        entry.painting = None
        entry.finish(self.runner.ending(entry.job, exc))


def planned_bytes(entry: _Entry) -> int:
    """The job's peak memory as planned when it was read (bot/engine/memory.py)."""
    assert entry.inputs is not None
    return entry.inputs.plan.bytes
