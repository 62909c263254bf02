"""A pool of warm worker processes on this machine, behind an async API.

    executor = LocalExecutor(ExecutorConfig(weights=...))
    await executor.start()
    handle = await executor.submit(job)
    async for event in handle.events(): ...      # JobQueued, JobStarted, JobProgress..., terminal
    terminal = await handle.result()             # JobDone | JobFailed | JobCancelled
    await handle.cancel()
    await executor.shutdown()

All state lives on the event loop's thread. One reader thread per worker blocks on the worker's
pipe and hands each message to the loop, so waiting on workers never blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from bot.executor.base import Executor, JobHandle
from bot.executor.protocol import (
    ExecutorClosed,
    Job,
    JobCancelled,
    JobFailed,
    JobQueued,
    JobStarted,
    QueueFull,
    Terminal,
    UserLimitReached,
    event_from_dict,
)
from bot.executor.scheduler import FairQueue
from bot.executor.worker import WorkerSpec, worker_main

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExecutorConfig:
    devices: tuple[str, ...] | None = None  # None: every CUDA GPU, else one CPU (or MPS) device
    workers_per_device: int = 1
    max_queued: int = 50  # jobs waiting (not running) across all users
    per_user_limit: int = 3  # queued plus running jobs per user
    time_limit: float = 900.0  # seconds a job may run
    cancel_grace: float = 5.0  # seconds a worker has to confirm a cancel before it is killed
    weights: str | None = None  # as for load_vgg19; None: STYLEBOT_VGG19_WEIGHTS, then the cache
    cache_size: int = 16  # style targets kept per worker
    start_timeout: float = 300.0  # seconds a worker may take to load VGG-19
    threads_per_worker: int | None = None  # CPU threads per worker; None: cores / CPU workers


class WorkerStartError(RuntimeError):
    """No worker could start (for example, VGG-19 weights are missing); the message says why."""


def detect_devices() -> tuple[str, ...]:
    """Every CUDA GPU, else MPS, else the CPU: asked of a short-lived process, so that neither
    torch nor CUDA is ever loaded into the bot's own process."""
    probe = "from bot.engine.devices import detect_devices; print(','.join(detect_devices()))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise WorkerStartError(f"could not detect the devices: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return tuple(done.stdout.strip().split(","))


class _Worker:
    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn = None  # parent -> worker
        self.cancel_seq = None
        self.ready = False
        self.device = spec.device
        self.running: _JobState | None = None
        self.stopping = False
        self.ready_future: asyncio.Future | None = None
        self.failed_starts = 0  # exits before ever being ready, in a row


class _JobState:
    def __init__(self, job: Job, handle: JobHandle):
        self.job = job
        self.handle = handle
        self.seq = 0
        self.worker: _Worker | None = None
        self.position: int | None = None
        self.stop_reason: str | None = None  # "cancelled", "timeout" or "shutdown" once asked
        self.timers: list[asyncio.TimerHandle] = []


class LocalExecutor(Executor):
    def __init__(self, config: ExecutorConfig = ExecutorConfig()):
        self.config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[_Worker] = []
        self._queue: FairQueue[_JobState] = FairQueue()
        self._jobs: dict[str, _JobState] = {}
        self._seq = 0
        self._closing = False
        self._start_failures: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        devices = self.config.devices or await asyncio.to_thread(detect_devices)
        cpu_workers = sum(1 for d in devices if d == "cpu") * self.config.workers_per_device
        threads = self.config.threads_per_worker or (max(1, (os.cpu_count() or 1) // cpu_workers) if cpu_workers else None)
        for device in devices:
            for i in range(self.config.workers_per_device):
                name = f"{device}#{i}"
                spec = WorkerSpec(name, device, self.config.weights, self.config.cache_size, threads if device == "cpu" else None)
                self._workers.append(_Worker(spec))
        waits = [self._spawn(w) for w in self._workers]
        try:
            results = await asyncio.wait_for(asyncio.gather(*waits), self.config.start_timeout)
        except TimeoutError:
            await self.shutdown(graceful=False)
            raise WorkerStartError(f"the workers did not load VGG-19 within {self.config.start_timeout:.0f} s") from None
        if not any(results):
            message = next(iter(self._start_failures.values()), "no worker started")
            await self.shutdown(graceful=False)
            raise WorkerStartError(message)

    def _spawn(self, worker: _Worker) -> asyncio.Future:
        """Start a worker process; the future turns True when it is ready, False if it failed."""
        assert self._loop is not None
        to_worker, worker_inbox = self._ctx.Pipe(duplex=False)
        parent_inbox, from_worker = self._ctx.Pipe(duplex=False)
        worker.cancel_seq = self._ctx.Value("q", -1, lock=False)
        worker.process = self._ctx.Process(
            target=worker_main, args=(worker.spec, to_worker, from_worker, worker.cancel_seq),
            name=f"stylebot-worker-{worker.spec.name}", daemon=True,
        )
        worker.process.start()
        to_worker.close()  # the child's ends: closing ours makes EOF mean "the worker died"
        from_worker.close()
        worker.conn, worker.ready, worker.stopping, worker.running = worker_inbox, False, False, None
        ready: asyncio.Future = self._loop.create_future()
        worker.ready_future = ready
        threading.Thread(target=self._read, args=(worker, parent_inbox, worker.process), daemon=True,
                         name=f"stylebot-reader-{worker.spec.name}").start()
        return ready

    def _read(self, worker: _Worker, inbox, process) -> None:
        """Reader thread: forward every message to the loop; report the worker's end."""
        assert self._loop is not None
        while True:
            try:
                message = inbox.recv()
            except (EOFError, OSError):
                break
            self._call(self._on_message, worker, process, message)
        process.join()
        inbox.close()
        self._call(self._on_exit, worker, process)

    def _call(self, fn, *args) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    def _on_message(self, worker: _Worker, process, message: dict[str, Any]) -> None:
        if worker.process is not process:
            return  # from a worker that has since been replaced
        op = message.get("op")
        if op == "ready":
            worker.ready, worker.device = True, message["device"]
            log.info("worker %s ready on %s with %s", worker.spec.name, worker.device, message["weights"])
            self._resolve(worker.ready_future, True)
            self._pump()
        elif op == "fatal":
            log.error("worker %s could not start: %s", worker.spec.name, message["message"])
            self._start_failures[worker.spec.name] = message["message"]
            worker.stopping = True
        elif op == "event":
            state = worker.running
            if state is None or state.seq != message["seq"]:
                return
            event = event_from_dict(message["event"])
            if event.terminal:
                self._finish(state, event)  # type: ignore[arg-type]
            else:
                state.handle._emit(event)

    def _on_exit(self, worker: _Worker, process) -> None:
        if worker.process is not process:
            return
        code = process.exitcode
        worker.failed_starts = 0 if worker.ready else worker.failed_starts + 1
        state, worker.running, worker.ready = worker.running, None, False
        self._resolve(worker.ready_future, False)
        if state is not None:
            if state.stop_reason == "timeout":
                self._finish(state, JobFailed(job_id=state.job.id, kind="timeout",
                                              message=f"the job ran past its time limit of {self._time_limit(state.job):.0f} s"))
            elif state.stop_reason is not None or self._closing:
                self._finish(state, JobCancelled(job_id=state.job.id, reason=state.stop_reason or "shutdown"))
            else:
                log.error("worker %s died running job %s (exit code %s)", worker.spec.name, state.job.id, code)
                self._finish(state, JobFailed(job_id=state.job.id, kind="worker_crashed",
                                              message=f"the worker process stopped unexpectedly ({_describe_exit(code)})"))
        if worker.failed_starts >= 3 and not worker.stopping:
            log.error("worker %s failed to start 3 times in a row; giving up on it", worker.spec.name)
            worker.stopping = True
        if self._closing or worker.stopping:
            self._check_alive()
            return
        log.warning("worker %s exited (%s); starting a new one", worker.spec.name, _describe_exit(code))
        self._spawn(worker)

    def _check_alive(self) -> None:
        """With no worker left to run them, queued jobs fail instead of waiting for ever."""
        if any(w.process is not None and not w.stopping for w in self._workers) or self._closing:
            return
        for state in self._queue.drain():
            self._finish(state, JobFailed(job_id=state.job.id, kind="internal", message="no worker is available to run the job"))

    async def shutdown(self, *, graceful: bool = True, timeout: float = 30.0) -> None:
        """Stop taking jobs; cancel queued ones; let running ones finish (graceful, up to
        `timeout` seconds) or cancel them; stop every worker. Safe to call twice."""
        self._closing = True
        for state in self._queue.drain():
            self._finish(state, JobCancelled(job_id=state.job.id, reason="shutdown"))
        running = [w.running for w in self._workers if w.running is not None]
        if running and graceful:
            await asyncio.wait([asyncio.ensure_future(s.handle.result()) for s in running], timeout=timeout)
        for worker in self._workers:
            if worker.running is not None:
                self._request_stop(worker.running, "shutdown")
        still = [w.running for w in self._workers if w.running is not None]
        if still:
            await asyncio.wait([asyncio.ensure_future(s.handle.result()) for s in still], timeout=self.config.cancel_grace + 2)
        for worker in self._workers:
            worker.stopping = True
            if worker.conn is not None:
                try:
                    worker.conn.send({"op": "stop"})
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 5
        for worker in self._workers:
            process = worker.process
            if process is None:
                continue
            while process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if process.is_alive():
                process.kill()
            await asyncio.get_running_loop().run_in_executor(None, process.join, 5)
            if worker.conn is not None:
                worker.conn.close()
                worker.conn = None

    def handle_signals(self, *signals: int, timeout: float = 30.0) -> None:
        """Shut down gracefully (running jobs get `timeout` seconds) on SIGTERM, or the given signals."""
        loop = asyncio.get_running_loop()
        for sig in signals or (signal.SIGTERM,):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.shutdown(timeout=timeout)))

    # --- jobs -------------------------------------------------------------------------------

    async def submit(self, job: Job) -> JobHandle:
        if self._closing or self._loop is None:
            raise ExecutorClosed("the bot is shutting down and takes no new jobs")
        mine = sum(1 for s in self._jobs.values() if s.job.user_id == job.user_id)
        if mine >= self.config.per_user_limit:
            raise UserLimitReached(
                f"you already have {mine} job(s) queued or running (the limit is {self.config.per_user_limit}); "
                "wait for one to finish or cancel one"
            )
        if len(self._queue) >= self.config.max_queued:
            raise QueueFull(f"the queue is full ({self.config.max_queued} jobs waiting); try again in a few minutes")
        handle = JobHandle(job, self)
        state = _JobState(job, handle)
        self._jobs[job.id] = state
        self._queue.push(job.user_id, state)
        self._announce_positions()
        self._pump()
        return handle

    async def cancel(self, job_id: str) -> bool:
        state = self._jobs.get(job_id)
        if state is None:
            return False
        if state.worker is None:
            self._queue.remove(state.job.user_id, state)
            self._finish(state, JobCancelled(job_id=job_id))
            self._announce_positions()
        else:
            self._request_stop(state, "cancelled")
        return True

    def _time_limit(self, job: Job) -> float:
        return min(job.time_limit, self.config.time_limit) if job.time_limit else self.config.time_limit

    def _pump(self) -> None:
        """Start queued jobs on idle workers, fairly across users."""
        for worker in self._workers:
            if not (worker.ready and worker.running is None and not worker.stopping):
                continue
            state = self._queue.pop()
            if state is None:
                break
            self._seq += 1
            state.seq, state.worker, state.position = self._seq, worker, None
            worker.running = state
            limit = self._time_limit(state.job)
            try:
                worker.conn.send({"op": "run", "seq": state.seq, "job": state.job.to_dict(), "time_limit": limit})
            except (OSError, ValueError):  # the worker just died: its exit handler respawns it
                worker.ready, worker.running, state.worker = False, None, None
                self._queue.push_front(state.job.user_id, state)
                continue
            state.handle._emit(JobStarted(job_id=state.job.id, worker=worker.spec.name, device=worker.device))
            # the worker stops itself at the limit; this is for a worker that cannot
            state.timers.append(self._loop.call_later(limit + self.config.cancel_grace, self._kill, state, "timeout"))
        self._announce_positions()

    def _request_stop(self, state: _JobState, reason: str) -> None:
        worker = state.worker
        if worker is None or worker.running is not state or state.stop_reason is not None:
            return
        state.stop_reason = reason
        worker.cancel_seq.value = state.seq
        state.timers.append(self._loop.call_later(self.config.cancel_grace, self._kill, state, reason))

    def _kill(self, state: _JobState, reason: str) -> None:
        worker = state.worker
        if worker is None or worker.running is not state or worker.process is None:
            return
        state.stop_reason = state.stop_reason or reason
        log.warning("killing worker %s: job %s did not stop (%s)", worker.spec.name, state.job.id, reason)
        worker.process.kill()

    def _finish(self, state: _JobState, event: Terminal) -> None:
        for timer in state.timers:
            timer.cancel()
        if state.worker is not None:
            self._queue.finished(state.job.user_id)
            if state.worker.running is state:
                state.worker.running = None
        self._jobs.pop(state.job.id, None)
        if state.stop_reason == "shutdown" and isinstance(event, JobCancelled):
            event = JobCancelled(job_id=state.job.id, reason="shutdown")
        state.handle._emit(event)
        if not self._closing:
            self._pump()

    def _announce_positions(self) -> None:
        for position, state in enumerate(self._queue.in_order(), start=1):
            if state.position != position:
                state.position = position
                state.handle._emit(JobQueued(job_id=state.job.id, position=position))

    @staticmethod
    def _resolve(future: asyncio.Future | None, value: bool) -> None:
        if future is not None and not future.done():
            future.set_result(value)

    # --- for tests and monitoring -------------------------------------------------------------

    @property
    def worker_count(self) -> int:
        return len(self._workers)

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None and w.process.is_alive()]

    async def wait_ready(self) -> None:
        """Wait until every worker that is starting has finished starting."""
        await asyncio.gather(*(w.ready_future for w in self._workers if w.ready_future is not None))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
