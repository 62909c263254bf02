"""The local backend: warm worker processes on this machine, each stepping up to its batch size
of jobs together (bot/worker/batcher.py).

    executor = LocalExecutor(ExecutorConfig(weights=...))   # a Dispatcher over a LocalPool
    await executor.start()
    handle = await executor.submit(job)
    async for event in handle.events(): ...      # JobQueued, JobStarted, JobProgress..., terminal
    await executor.shutdown()

Nothing here blocks the event loop: one reader thread per worker blocks on the worker's pipe and
hands each message to the loop, and one writer thread per worker does every write to it (a job is
larger than a pipe's buffer, and a stopped or hung worker would otherwise freeze the loop).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess

from bot.executor.base import Backend, Listener
from bot.executor.dispatch import Dispatcher, ExecutorConfig
from bot.extras import require
from bot.metrics import BotMetrics
from bot.protocol.entry import LOCAL_WORKER, run_entry
from bot.protocol.messages import (
    Cancel,
    Emit,
    FailureKind,
    Fatal,
    FromWorker,
    Job,
    JobCancelled,
    JobFailed,
    Painted,
    Ready,
    Run,
    RunnerSpec,
    Stop,
    StopReason,
    ToWorker,
    WorkerSpec,
    WorkerStats,
    default_batch_size,
)
from bot.threads import available_cores

log = logging.getLogger(__name__)


class WorkerStartError(RuntimeError):
    """No worker could start (for example, VGG-19 weights are missing); the message says why."""


def LocalExecutor(  # noqa: N802 (a factory)
    config: ExecutorConfig | None = None, metrics: BotMetrics | None = None
) -> Dispatcher:
    """The dispatcher over a pool of local worker processes, counting into `metrics`."""
    config = config or ExecutorConfig()
    return Dispatcher(LocalPool(config), config, metrics)


def ask_torch(code: str) -> str:
    """What `code` prints in a short-lived process, so that neither torch nor CUDA is ever loaded
    into the calling process; WorkerStartError with the last line of its error otherwise."""
    require("torch", "running jobs on this machine")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise WorkerStartError((done.stderr.strip().splitlines() or ["?"])[-1])
    return done.stdout.strip()


def detect_devices() -> tuple[str, ...]:
    """Every CUDA GPU, else MPS, else the CPU."""
    try:
        found = ask_torch(
            "from bot.engine.devices import detect_devices; print(','.join(detect_devices()))"
        )
    except WorkerStartError as exc:
        raise WorkerStartError(f"could not detect the devices: {exc}") from None
    return tuple(found.split(","))


def check_device(name: str) -> str:
    """The device `name` stands for (`auto`: the best one here), checked to exist on this machine;
    WorkerStartError with the reason otherwise (for example no CUDA GPU)."""
    found = ask_torch(
        "import sys\n"
        "from bot.engine.devices import DeviceError, parse_device\n"
        f"try: print(parse_device({name!r}))\n"
        "except DeviceError as exc: sys.exit(f'DeviceError: {exc}')"
    )
    return found


class _Worker:
    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.process: BaseProcess | None = None
        self.outgoing: queue.SimpleQueue[ToWorker | None] | None = (
            None  # drained by the writer thread
        )
        self.ready = False
        self.device = spec.runner.device
        self.running: dict[int, _Running] = {}  # by seq: the jobs it steps now
        self.stopping = False
        self.ready_future: asyncio.Future[bool] | None = None
        self.failed_starts = 0  # exits before ever being ready, in a row

    @property
    def free(self) -> int:
        if not self.ready or self.stopping:
            return 0
        return max(0, self.spec.batch_size - len(self.running))

    def send(self, message: ToWorker | None) -> None:
        if self.outgoing is not None:
            self.outgoing.put(message)


class _Running:
    def __init__(self, job: Job, seq: int):
        self.job, self.seq = job, seq
        self.stop_reason: StopReason | None = None  # a stop was asked for, and why
        self.painted = False  # only its encoding is left: a cancel is answered after it
        self.kill_timer: asyncio.TimerHandle | None = None


class LocalPool(Backend):
    def __init__(self, config: ExecutorConfig):
        self.config = config
        if config.start_method == "forkserver":  # torch and the worker's code imported once
            server = multiprocessing.get_context("forkserver")
            server.set_forkserver_preload([LOCAL_WORKER.split(":")[0]])
            self._ctx: SpawnContext | ForkServerContext = server
        else:
            self._ctx = multiprocessing.get_context("spawn")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._workers: list[_Worker] = []
        self._by_job: dict[str, _Worker] = {}
        self._seq = 0
        self._closing = False
        self._start_failures: dict[str, str] = {}
        self._started = False
        self._restarts = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, listener: Listener) -> None:
        self._loop, self._listener = asyncio.get_running_loop(), listener
        devices = self.config.devices or await asyncio.to_thread(detect_devices)
        cpu_workers = sum(1 for d in devices if d == "cpu") * self.config.workers_per_device
        threads = self.config.threads_per_worker or (
            max(1, available_cores() // cpu_workers) if cpu_workers else None
        )
        for device in devices:
            for i in range(self.config.workers_per_device):
                batch = self.config.batch_size or default_batch_size(device)
                runner = RunnerSpec(
                    device=device,
                    weights=self.config.weights,
                    cache_size=self.config.cache_size,
                    threads=threads if device == "cpu" else None,
                    limits=self.config.image_limits,
                    memory_limit=self.config.memory_limit,
                    shape_buckets=self.config.shape_buckets and batch > 1,
                    precision=self.config.precision,
                    precision_cache=self.config.precision_cache,
                )
                self._workers.append(
                    _Worker(WorkerSpec(f"{device}#{i}", runner, self.config.log, batch))
                )
        log.info(
            "starting %d worker(s) (%s); each loads VGG-19",
            len(self._workers),
            ", ".join(w.spec.name for w in self._workers),
        )
        waits = [self._spawn(w) for w in self._workers]
        try:  # (not wait_for over gather: a cancelled gather leaves an unread exception)
            _, pending = await asyncio.wait(waits, timeout=self.config.start_timeout)
        except asyncio.CancelledError:  # SIGTERM while the workers load
            await self.close()
            raise
        if pending:
            await self.close()
            raise WorkerStartError(
                f"the workers did not load VGG-19 within {self.config.start_timeout:.0f} s"
            )
        if not any(wait.result() for wait in waits):
            message = next(iter(self._start_failures.values()), "no worker started")
            await self.close()
            raise WorkerStartError(message)
        self._started = True

    def _spawn(self, worker: _Worker) -> asyncio.Future[bool]:
        """Start a worker process; the future turns True when it is ready, False if it failed."""
        assert self._loop is not None
        to_worker, worker_inbox = self._ctx.Pipe(duplex=False)
        parent_inbox, from_worker = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=run_entry,
            args=(LOCAL_WORKER, worker.spec, to_worker, from_worker),
            name=f"stylebot-worker-{worker.spec.name}",
            daemon=True,
        )
        process.start()
        to_worker.close()  # the child's ends: closing ours makes EOF mean "the worker died"
        from_worker.close()
        outgoing: queue.SimpleQueue[ToWorker | None] = queue.SimpleQueue()
        worker.process, worker.outgoing = process, outgoing
        worker.ready, worker.stopping, worker.running = False, False, {}
        worker.ready_future = self._loop.create_future()
        name = worker.spec.name
        threading.Thread(
            target=self._read,
            args=(worker, parent_inbox, process),
            daemon=True,
            name=f"stylebot-reader-{name}",
        ).start()
        threading.Thread(
            target=_write,
            args=(worker_inbox, outgoing),
            daemon=True,
            name=f"stylebot-writer-{name}",
        ).start()
        return worker.ready_future

    def _read(self, worker: _Worker, inbox, process) -> None:
        """Reader thread: forward every message to the loop; report the worker's end."""
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

    def _on_message(self, worker: _Worker, process, message: FromWorker) -> None:
        if worker.process is not process:
            return  # from a worker that has since been replaced
        if isinstance(message, Ready):
            worker.ready, worker.device = True, message.device
            log.info(
                "worker %s ready on %s with %s; precision %s",
                worker.spec.name, worker.device, message.weights, message.precision,
            )  # fmt: skip
            _resolve(worker.ready_future, True)
            self._capacity()
        elif isinstance(message, Fatal):
            # at start the reason reaches the caller in WorkerStartError; later only the log has it
            log.log(
                logging.ERROR if self._started else logging.DEBUG,
                "worker %s could not start: %s",
                worker.spec.name,
                message.message,
            )
            self._start_failures[worker.spec.name] = message.message
            worker.stopping = True
        elif isinstance(message, WorkerStats):
            if self._listener is not None:
                self._listener.on_stats(worker.spec.name, message)
        elif isinstance(message, Painted):
            running = worker.running.get(message.seq)
            if running is not None:  # never killed over it now: its cancel is answered after
                running.painted = True  # the encoding, which another member's jobs wait on too
                if running.kill_timer is not None:
                    running.kill_timer.cancel()
                    running.kill_timer = None
        elif isinstance(message, Emit):
            running = worker.running.get(message.seq)
            if running is None:
                return
            event = message.event
            if event.terminal:
                self._release(worker, running)
            self._emit(running.job.id, event)

    def _on_exit(self, worker: _Worker, process) -> None:
        if worker.process is not process:
            return
        code = process.exitcode
        worker.send(None)  # ends the writer thread
        worker.failed_starts = 0 if worker.ready else worker.failed_starts + 1
        lost, worker.ready = list(worker.running.values()), False
        _resolve(worker.ready_future, False)
        for running in lost:  # every job of the batch ends with the process
            self._release(worker, running)
            if running.stop_reason is not None or self._closing:
                reason = running.stop_reason or StopReason.SHUTDOWN
                self._emit(running.job.id, JobCancelled(job_id=running.job.id, reason=reason))
            else:
                log.error(
                    "worker %s died running job %s (%s)",
                    worker.spec.name,
                    running.job.id,
                    _describe_exit(code),
                )
                self._emit(
                    running.job.id,
                    JobFailed(
                        job_id=running.job.id,
                        kind=FailureKind.WORKER_CRASHED,
                        message=f"the worker process stopped unexpectedly ({_describe_exit(code)})",
                    ),
                )
        if worker.failed_starts >= 3 and not worker.stopping:
            log.error(
                "worker %s failed to start 3 times in a row; giving up on it", worker.spec.name
            )
            worker.stopping = True
        if self._closing or worker.stopping:
            if (
                not any(w.process is not None and not w.stopping for w in self._workers)
                and self._listener
            ):
                self._listener.on_unavailable("no worker is available to run the job")
            return
        log.warning(
            "worker %s exited (%s); starting a new one", worker.spec.name, _describe_exit(code)
        )
        self._restarts += 1
        self._spawn(worker)

    async def close(self) -> None:
        self._closing = True
        for worker in self._workers:
            worker.stopping = True
            worker.send(Stop())
            worker.send(None)
        deadline = time.monotonic() + 5
        for worker in self._workers:
            process = worker.process
            if process is None:
                continue
            while process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if process.is_alive():
                process.kill()
            await asyncio.to_thread(process.join, 5)

    # --- jobs -------------------------------------------------------------------------------

    def free_slots(self) -> int:
        if self._closing:
            return 0
        return sum(w.free for w in self._workers)

    def run(self, job: Job) -> None:
        worker = max(self._workers, key=lambda w: w.free)  # the least busy
        self._seq += 1
        worker.running[self._seq] = _Running(job, self._seq)
        self._by_job[job.id] = worker
        worker.send(Run(self._seq, job))  # its batcher reports JobStarted when it paints

    def stop(self, job_id: str, reason: StopReason) -> None:
        worker = self._by_job.get(job_id)
        running = (
            next((r for r in worker.running.values() if r.job.id == job_id), None)
            if worker
            else None
        )
        if worker is None or running is None or running.stop_reason is not None:
            return
        running.stop_reason = reason
        worker.send(Cancel(running.seq, reason))  # through the writer thread: never blocks the loop
        if running.painted:  # only its encoding is left: the worker answers once that ends
            return
        assert self._loop is not None
        running.kill_timer = self._loop.call_later(
            self.config.cancel_grace, self._kill, worker, running
        )

    def _kill(self, worker: _Worker, running: _Running) -> None:
        if worker.running.get(running.seq) is not running or worker.process is None:
            return
        log.warning(
            "killing worker %s: job %s did not stop within %.0f s",
            worker.spec.name,
            running.job.id,
            self.config.cancel_grace,
        )
        worker.process.kill()

    def _release(self, worker: _Worker, running: _Running) -> None:
        worker.running.pop(running.seq, None)
        self._by_job.pop(running.job.id, None)
        if running.kill_timer is not None:
            running.kill_timer.cancel()

    def _emit(self, job_id: str, event) -> None:
        if self._listener is not None:
            self._listener.on_event(job_id, event)
        if event.terminal:
            self._capacity()

    def _capacity(self) -> None:
        if self._listener is not None and not self._closing:
            self._listener.on_capacity()

    # --- for tests and monitoring -------------------------------------------------------------

    def workers_ready(self) -> int:
        return sum(1 for w in self._workers if w.ready and not w.stopping)

    def worker_restarts(self) -> int:
        return self._restarts

    @property
    def worker_count(self) -> int:
        return len(self._workers)

    def worker_pids(self) -> list[int]:
        return [
            w.process.pid
            for w in self._workers
            if w.process is not None and w.process.pid is not None and w.process.is_alive()
        ]

    async def wait_ready(self) -> None:
        """Wait until every worker that is starting has finished starting."""
        await asyncio.gather(*(w.ready_future for w in self._workers if w.ready_future is not None))


def _write(connection, outgoing: queue.SimpleQueue) -> None:
    """Writer thread: every write to one worker's pipe; None ends it."""
    while (message := outgoing.get()) is not None:
        try:
            connection.send(message)
        except (OSError, ValueError):  # the worker is gone: its reader reports the exit
            break
    connection.close()


def _resolve(future: asyncio.Future[bool] | None, value: bool) -> None:
    if future is not None and not future.done():
        future.set_result(value)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
