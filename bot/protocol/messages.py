"""What crosses the boundary between the bot and the GPU workers: data only.

A Job goes in; events come out: JobQueued (position), JobStarted, JobProgress..., and exactly one
terminal event, JobDone, JobFailed or JobCancelled. Everything converts to plain dicts
(`to_dict`/`event_from_dict`, bytes kept) and to JSON (`to_json`/`from_json`, bytes in base64),
so any backend can carry it without pickling code or tensors.

Also here, because both sides of a process boundary read them: the specs a local worker process
starts from and the messages on its pipes (bot/executor/pool.py <-> bot/worker/process.py), and
the Celery task message (bot/executor/celery/backend.py -> bot/worker/celery_task.py).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from bot.engine.params import ImageLimits, InvalidParams, StyleParams
from bot.logs import LogConfig

CUDA_BATCH_SIZE = 16  # measured on an H200: see docs/executor.md, "Batching"


def default_batch_size(device: str) -> int:
    """Jobs one worker steps together unless told: 16 on a CUDA GPU, 1 elsewhere."""
    return CUDA_BATCH_SIZE if device.startswith("cuda") else 1


class FailureKind(StrEnum):
    BAD_INPUT = "bad_input"  # the images or the parameters cannot work; the message says why
    # the painting diverged (J became NaN or infinite) after it started: a failure, not a refusal
    DIVERGED = "diverged"
    OUT_OF_MEMORY = "out_of_memory"
    TIMEOUT = "timeout"
    WORKER_CRASHED = "worker_crashed"
    INTERNAL = "internal"


class StopReason(StrEnum):
    """Why a job was stopped before its end (JobCancelled.reason, and the dispatcher's requests)."""

    CANCELLED = "cancelled"  # the member (or a moderator) asked
    TIMEOUT = "timeout"  # past its time limit: ends as JobFailed(TIMEOUT)
    SHUTDOWN = "shutdown"  # the bot is stopping


class JobStatus(StrEnum):
    """Where a job is, as the bot's jobs table records it."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the bot stopped while it ran; the member was told
    REFUSED = "refused"  # the queue did not take it; the member was told privately (row purged)

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


JOB_ID = r"[0-9a-f]{32}"  # what new_job_id() makes (a regular expression)


def new_job_id() -> str:
    return uuid.uuid4().hex


def paint_limit(own: float | None, cost: int, configured: float) -> float:
    """The seconds a job may paint, on every backend: its own limit, at most the executor's
    `configured` per unit of cost (a clip of 48 frames may run as long as 48 stills)."""
    allowed = configured * max(1, cost)
    return min(own, allowed) if own else allowed


@dataclass(frozen=True, kw_only=True)
class Job:
    user_id: int
    guild_id: int | None
    content: bytes
    styles: tuple[bytes, ...]
    params: StyleParams  # checked by the worker (StyleParams.validate) before it paints
    id: str = field(default_factory=new_job_id)
    time_limit: float | None = None  # seconds of running time; None: the executor's limit
    result_limit: int | None = None  # bytes the result may take (an upload limit); None: always PNG
    # what the job weighs in the fair queue and in its time limit: a still 1, a moving picture
    # its frames (bot/executor/scheduler.py)
    cost: int = 1
    # a still's content size as the worker will decode it (from its header): the dispatcher
    # releases jobs of one shape bucket together where workers batch; None: unknown, or a clip
    shape: tuple[int, int] | None = None

    def limit_within(self, configured: float) -> float:
        return paint_limit(self.time_limit, self.cost, configured)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["styles"] = list(self.styles)
        data["params"] = self.params.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Raises InvalidParams for fields or parameters this version does not know."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InvalidParams(
                f"unknown job fields (a newer version?): {', '.join(sorted(unknown))}"
            )
        params = StyleParams.from_dict(data["params"])
        shape = data.get("shape")
        return cls(
            **{
                **data,
                "styles": tuple(data["styles"]),
                "params": params,
                "shape": tuple(shape) if shape else None,
            }
        )

    def to_json(self) -> str:
        return json.dumps(_encode_bytes(self.to_dict()))

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls.from_dict(_decode_bytes(json.loads(text)))


@dataclass(frozen=True, kw_only=True)
class Event:
    type: ClassVar[str] = ""
    terminal: ClassVar[bool] = False
    job_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(_encode_bytes(self.to_dict()))


@dataclass(frozen=True, kw_only=True)
class JobQueued(Event):
    type: ClassVar[str] = "queued"
    position: int  # 1 = the next job to start
    no_worker: bool = False  # no worker is online: the job waits until one is


@dataclass(frozen=True, kw_only=True)
class JobStarted(Event):
    type: ClassVar[str] = "started"
    worker: str
    device: str


@dataclass(frozen=True, kw_only=True)
class JobProgress(Event):
    type: ClassVar[str] = "progress"
    step: int
    total: int
    losses: dict[str, float]
    elapsed: float
    eta: float | None
    preview: bytes | None = None  # a small JPEG every `preview_every` steps
    fraction: float | None = None  # the share of the work done (None: step / total)
    sent_at: float = 0.0  # the worker's wall clock (epoch seconds) when it sent this


@dataclass(frozen=True, kw_only=True)
class JobDone(Event):
    type: ClassVar[str] = "done"
    terminal: ClassVar[bool] = True
    image: bytes  # PNG, or JPEG/WebP when PNG does not fit the job's result_limit; a GIF or MP4
    format: str  # "png", "jpeg" or "webp"; for a moving picture "gif", "mp4", "webp" or "png"
    width: int
    height: int
    seed: int
    steps: int
    seconds: float  # running time on the worker
    device: str
    weights: str  # which VGG-19 weights made it (a label)
    cache_hit: bool = False  # the style targets came from the worker's cache
    converged_at: int | None = None  # the final level stopped improving after this many steps
    # CUDA: peak allocated during the job; CPU: the worker's peak resident size
    peak_memory_bytes: int = 0
    frames: int = 0  # a moving picture's frames (0: a still)
    flicker: float | None = None  # a moving picture's warping error (bot/engine/flow.py)
    notes: tuple[
        str, ...
    ] = ()  # what the worker chose or changed, for the member (the format, a cut)

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(self.notes))  # a list after JSON


@dataclass(frozen=True, kw_only=True)
class JobFailed(Event):
    type: ClassVar[str] = "failed"
    terminal: ClassVar[bool] = True
    kind: FailureKind
    message: str  # for a person: never a traceback

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FailureKind(self.kind))


@dataclass(frozen=True, kw_only=True)
class JobCancelled(Event):
    type: ClassVar[str] = "cancelled"
    terminal: ClassVar[bool] = True
    reason: StopReason = StopReason.CANCELLED

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", StopReason(self.reason))


def timed_out(job_id: str, limit: float) -> JobFailed:
    """The ending of a job stopped at its time limit of `limit` seconds."""
    return JobFailed(
        job_id=job_id,
        kind=FailureKind.TIMEOUT,
        message=f"the job ran past its time limit of {limit:.0f} s",
    )


Terminal = JobDone | JobFailed | JobCancelled
EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls for cls in (JobQueued, JobStarted, JobProgress, JobDone, JobFailed, JobCancelled)
}


def event_from_dict(data: dict[str, Any]) -> Event:
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    return cls(**data)


def event_from_json(text: str) -> Event:
    return event_from_json_data(json.loads(text))


def event_from_json_data(data: dict[str, Any]) -> Event:
    """An event from its JSON, already parsed (bytes still in base64)."""
    return event_from_dict(_decode_bytes(data))


_BYTES_TAG = "__b64__"


def dumps(data: dict[str, Any]) -> str:
    """JSON of a dict that may hold bytes (as base64); `event_from_json` reads it back."""
    return json.dumps(_encode_bytes(data))


def _encode_bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return {_BYTES_TAG: base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k: _encode_bytes(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_bytes(v) for v in value]
    return value


def _decode_bytes(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_BYTES_TAG}:
            return base64.b64decode(value[_BYTES_TAG])
        return {k: _decode_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_bytes(v) for v in value]
    return value


class SubmitError(Exception):
    """A job was refused at submit time; the message says why and what to do."""


class QueueFull(SubmitError):
    pass


class UserLimitReached(SubmitError):
    pass


class ExecutorClosed(SubmitError):
    pass


class BackendBusy(SubmitError):
    """The service that runs jobs (Redis, the broker) is not reachable now."""


# --- the local pool's worker processes --------------------------------------------------------


@dataclass(frozen=True)
class RunnerSpec:
    """What a worker's JobRunner (bot/worker/runner.py) is made from."""

    device: str
    weights: str | None
    cache_size: int = 16
    threads: int | None = None  # torch threads (CPU); None: torch's default
    limits: ImageLimits = ImageLimits()  # what the decoder accepts (the bot's configured limits)
    memory_limit: int | None = None  # bytes this worker's jobs may use (STYLEBOT_GPU_MEMORY_LIMIT)
    # paint stills at their shape bucket (bot/media/buckets.py), so that batches fill: on for a
    # worker that steps several jobs together, off where each job runs alone
    shape_buckets: bool = False
    # STYLEBOT_PRECISION: auto is measured on a CPU (bot/engine/cpu_precision.py)
    precision: str = "auto"
    precision_cache: str | None = None  # the file that keeps a CPU's measured answer


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    runner: RunnerSpec
    log: LogConfig = LogConfig()  # the bot's own logging: level and format
    batch_size: int = 1  # jobs stepped together in this process


# Parent to worker: Run, Cancel, Stop. Worker to parent: Ready, Fatal, Emit (an event of the job
# with that `seq`), Painted (only its encoding is left), WorkerStats (every STATS_INTERVAL
# seconds while it changes).


@dataclass(frozen=True)
class Run:
    seq: int
    job: Job  # pickled by the pipe as it is: a worker runs the code of the bot that spawned it


@dataclass(frozen=True)
class Cancel:
    seq: int
    reason: StopReason  # why: the JobCancelled that answers it carries it back


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Ready:
    device: str
    weights: str
    precision: str = ""  # the precision its jobs run in, and why (bot/engine/devices.py)


@dataclass(frozen=True)
class Fatal:
    message: str


@dataclass(frozen=True)
class Emit:
    seq: int
    event: Event


@dataclass(frozen=True)
class Painted:
    """The job `seq` has finished painting: only its encoding is left (a few ms to seconds), and
    a cancel is answered once that ends. The pool never kills a worker over such a job."""

    seq: int


STATS_INTERVAL = 2.0  # seconds between a worker's WorkerStats


@dataclass(frozen=True, kw_only=True)
class WorkerStats:
    """What a worker has painted since it started (totals), and its memory now: for the metrics
    of its device (bot/metrics.py). A local worker sends it to the bot; a `stylebot worker`
    serves it on its own port."""

    device: str
    busy_seconds: float = 0.0  # time spent stepping jobs
    batches: int = 0  # batched steps: one VGG-19 pass over the jobs of one shape
    job_steps: int = 0  # optimiser steps of jobs (a batch of 5 stepping once: 5)
    batch_size: int = 1  # the most jobs it steps together
    memory_bytes: int = 0  # in use now (CUDA: allocated by torch; CPU: resident size)
    memory_peak_bytes: int = 0  # the most since it started
    memory_reserved_bytes: int = 0  # CUDA: held by torch's allocator (>= in use); CPU: as in use
    memory_total_bytes: int = 0  # the card's memory (CUDA), the host's (CPU)
    memory_limit_bytes: int = 0  # what its jobs may take, as it plans them; 0: no limit


ToWorker = Run | Cancel | Stop
FromWorker = Ready | Fatal | Emit | Painted | WorkerStats


# --- Celery ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TaskMessage:
    """A Celery task's one argument: the job without its images, every other field of `Job` in
    its JSON form (`Job.to_dict`), so that nothing a job carries is lost on the way. The worker
    derives every Redis key from the job's id (bot/protocol/celery_keys.py): the images under
    their input keys."""

    fields: dict[str, Any]  # Job.to_dict() less "content" and "styles"
    styles: int  # how many style images

    @classmethod
    def of(cls, job: Job) -> TaskMessage:
        fields = job.to_dict()
        del fields["content"], fields["styles"]
        return cls(fields=fields, styles=len(job.styles))

    @property
    def job_id(self) -> str:
        return self.fields["id"]

    def limit_within(self, configured: float) -> float:
        return paint_limit(self.fields.get("time_limit"), self.fields.get("cost", 1), configured)

    def job(self, content: bytes, styles: tuple[bytes, ...]) -> Job:
        """The job with its images; raises InvalidParams for parameters this worker's version
        does not know (a bot newer than its workers)."""
        return Job.from_dict({**self.fields, "content": content, "styles": styles})

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.fields, "styles": self.styles}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskMessage:
        if "job" not in data:  # sent by a bot before the job travelled whole (0.x): job_id ...
            fields = {k: v for k, v in data.items() if k != "styles"}
            fields["id"] = fields.pop("job_id")
            return cls(fields=fields, styles=data["styles"])
        return cls(fields=data["job"], styles=data["styles"])
