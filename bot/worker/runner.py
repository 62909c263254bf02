"""JobRunner: runs jobs on warm models and turns everything that can happen into an event.

It knows nothing of pipes, processes or queues. A job goes through three steps: `read` decodes
and checks its pictures and plans its memory (cheap: nothing on the device yet), `start` sets up
its Painting, `finish` encodes the result; `ending` turns any exception of the three, or of a
step, into the terminal event. `run` does all of it for a job alone; the Batcher
(bot/worker/batcher.py) steps the paintings of many jobs together in between.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from bot.engine import colour
from bot.engine.devices import memory_budget, parse_device, policy_for, resolve_precision
from bot.engine.memory import DoesNotFit, MemoryPlan, clip_chunk, plan_job
from bot.engine.painting import Painting, out_of_memory
from bot.engine.params import InvalidParams, StyleParams, check_pictures, fit_size
from bot.engine.progress import Cancelled, NonFiniteLoss, Progress, Result
from bot.engine.transfer import stylize
from bot.engine.vgg import VGG19Features, load_vgg19
from bot.media import buckets, clips, encoding, imaging
from bot.media.clips import Clip
from bot.media.imaging import ImageError
from bot.protocol.messages import (
    Event,
    FailureKind,
    Job,
    JobCancelled,
    JobDone,
    JobFailed,
    JobProgress,
    RunnerSpec,
    Terminal,
)
from bot.threads import apply_budget, default_budget
from bot.worker.stats import PaintingStats

log = logging.getLogger(__name__)

PREVIEW_SIDE = 256


class StyleTargetCache(MutableMapping):
    """An LRU of style Gram matrices, keyed by the engine (image hash and target parameters)."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._data: OrderedDict[str, Any] = OrderedDict()

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        self._data.move_to_end(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True)
class JobInputs:
    """A job's pictures decoded and checked, and its memory plan."""

    params: StyleParams
    content: Clip  # the frames to paint (a still: one)
    styles: list[Image.Image]
    plan: MemoryPlan
    canvas: tuple[int, int]  # the shape it is painted at (its shape bucket's, or its own)
    notes: tuple[str, ...] = ()  # what was changed to fit the limits, for the member


class JobRunner:
    """Loads VGG-19 once (per pooling), warms it up, then runs jobs."""

    def __init__(self, spec: RunnerSpec):
        apply_budget(spec.threads or default_budget())  # torch, OpenCV, codecs (bot/threads.py)
        self.spec = spec
        self.device = parse_device(spec.device)
        self.models = {"max": load_vgg19(spec.weights, pooling="max", device=self.device)}
        self.weights_label = self.models["max"].source.label
        cache = Path(spec.precision_cache) if spec.precision_cache else None
        precision, why = resolve_precision(self.device, spec.precision, self.models["max"], cache)
        self.policy = policy_for(self.device, precision)
        self.precision_label = f"{precision} ({why})"
        self.device_name = str(self.device)
        if self.device.type == "cuda":
            self.device_name = f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        self.where = "GPU" if self.device.type == "cuda" else "worker"  # for messages
        self.cache = StyleTargetCache(spec.cache_size)
        self._warm_up()
        # what it paints, for the metrics (bot/worker/stats.py); a Batcher sets its batch size
        self.stats = PaintingStats(
            str(self.device), 1, self.memory_now, total=device_total_bytes(self.device),
            limit=self.memory_budget(),
        )  # fmt: skip

    def _warm_up(self) -> None:
        """A short run at the shapes members send most, through the same path as a job (model,
        policy, optimiser), so that the first job does not pay for kernel and library set-up."""
        shapes = [(512, 512), (512, 384)] if self.device.type == "cuda" else [(64, 64)]
        generator = torch.Generator().manual_seed(0)
        for width, height in shapes:
            content = colour.to_image(torch.rand(3, height, width, generator=generator))
            stylize(
                self.models["max"],
                content,
                [content],
                StyleParams(size=max(width, height), steps=3, seed=0),
                policy=self.policy,
            )

    def memory_budget(self) -> int | None:
        """Bytes the jobs of this worker may take at once (bot/engine/devices.py)."""
        return memory_budget(self.device, self.spec.memory_limit)

    def _model(self, pooling: str) -> VGG19Features:
        if pooling not in self.models:
            self.models[pooling] = load_vgg19(
                self.spec.weights, pooling=pooling, device=self.device
            )
        return self.models[pooling]

    def run(
        self,
        job: Job,
        emit: Callable[[Event], None],
        should_cancel: Callable[[], bool],
        *,
        reraise: tuple[type[BaseException], ...] = (),
    ) -> Terminal:
        """Run `job` alone; progress goes to `emit`; the terminal event is returned, never raised
        (except the `reraise` kinds: an adapter's own signals, such as a task time limit)."""
        try:
            inputs = self.read(job, should_cancel)
            painting = self.start(job, inputs, emit, should_cancel)
            painting.run(after_step=self.stats.timed())
            return self.finish(job, painting, inputs.notes)
        except reraise:
            raise
        except Exception as exc:
            return self.ending(job, exc)

    def read(self, job: Job, should_cancel: Callable[[], bool] | None = None) -> JobInputs:
        """Decode and check the job's pictures and plan its memory (bot/engine/memory.py): the
        whole picture, a shorter L-BFGS history or tiles. A job that fits in no way is refused
        here, before anything runs, with the largest size that does. Reading a clip stops at
        its next frame once `should_cancel` says so (Cancelled). Touches nothing on the device:
        it may run on any thread."""
        limits = self.spec.limits
        try:
            params, content, notes = clips.read_content(
                job.content,
                job.params.validate(),
                limits,
                should_stop=should_cancel,
            )
            styles = [imaging.decode(s, limits, name="style image") for s in job.styles]
            check_pictures(params, *content.frames[0].size, [s.size for s in styles], content.what)
        except clips.ReadingStopped:
            raise Cancelled from None
        except (InvalidParams, ImageError, TypeError) as exc:
            raise Refused(FailureKind.BAD_INPUT, str(exc)) from None
        width, height = fit_size(*content.frames[0].size, params.size)
        frames = len(content.frames)
        width, height = buckets.canvas_for(width, height, frames, self.spec.shape_buckets)
        try:
            plan = plan_job(
                params, width, height, self.memory_budget(), frames=frames,
                precision=self.policy.precision, where=self.where,
                max_chunk=clip_chunk(self.device.type),
            )  # fmt: skip
        except DoesNotFit as exc:
            raise Refused(FailureKind.OUT_OF_MEMORY, str(exc)) from None
        return JobInputs(params, content, styles, plan, (width, height), notes)

    def start(
        self,
        job: Job,
        inputs: JobInputs,
        emit: Callable[[Event], None],
        should_cancel: Callable[[], bool],
    ) -> Painting:
        """The job's Painting, its first level's targets set up; progress goes to `emit`."""

        def on_progress(progress: Progress) -> None:
            preview = None
            if progress.preview is not None:
                preview = imaging.encode(
                    imaging.resize(progress.preview, PREVIEW_SIDE), "jpeg", quality=80
                )
            emit(
                JobProgress(
                    job_id=job.id,
                    step=progress.step,
                    total=progress.total,
                    losses=progress.losses,
                    elapsed=progress.elapsed,
                    eta=progress.eta,
                    fraction=progress.fraction,
                    preview=preview,
                    sent_at=time.time(),
                )
            )

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        plan, params = inputs.plan, inputs.params
        if plan.tile is not None:
            log.info(
                "job %s: %dx%d in tiles of %d px, L-BFGS history %d, about %.1f GB",
                job.id,
                *fit_size(*inputs.content.frames[0].size, params.size),
                plan.tile,
                plan.history,
                plan.bytes / 2**30,
            )
        return Painting(
            self._model(params.pooling),
            inputs.content,
            inputs.styles,
            params,
            self.policy,
            on_progress=on_progress,
            should_cancel=should_cancel,
            style_cache=self.cache,
            plan=plan,
            canvas=inputs.canvas,
        )

    def finish(self, job: Job, painting: Painting, notes: tuple[str, ...] = ()) -> JobDone:
        """The finished painting as the job's JobDone (`done`)."""
        return self.done(job, painting.result(), painting.style_cache_hits > 0, notes)

    def done(
        self, job: Job, result: Result, cache_hit: bool, notes: tuple[str, ...] = ()
    ) -> JobDone:
        """A finished painting's result as the job's JobDone, encoded to fit the job's upload
        limit (a moving picture as the format that plays inline and fits: bot/media/clips.py),
        `notes` and that choice told to the member. CPU work only: any thread."""
        data, fmt, why = encoding.encode_result(result.clip, limit_bytes=job.result_limit)
        notes = (*notes, why) if why else notes
        return JobDone(
            job_id=job.id,
            image=data,
            format=fmt,
            width=result.image.width,
            height=result.image.height,
            seed=result.seed,
            steps=result.steps,
            seconds=result.elapsed,
            device=self.device_name,
            weights=self.weights_label,
            cache_hit=cache_hit,
            converged_at=result.converged_at,
            peak_memory_bytes=self._peak_memory(),
            frames=len(result.frames) if result.clip.moving else 0,
            flicker=result.flicker,
            notes=notes,
        )

    def ending(self, job: Job, exc: BaseException) -> Terminal:
        """The terminal event for an exception raised while reading, starting, stepping or
        finishing a job."""
        if isinstance(exc, Refused):
            return JobFailed(job_id=job.id, kind=exc.kind, message=exc.message)
        if isinstance(exc, Cancelled):
            return JobCancelled(job_id=job.id)
        if isinstance(exc, NonFiniteLoss):  # painting went wrong: its message says what to lower
            return JobFailed(job_id=job.id, kind=FailureKind.DIVERGED, message=str(exc))
        if isinstance(exc, InvalidParams):  # settings this worker cannot paint, found at the start
            return JobFailed(job_id=job.id, kind=FailureKind.BAD_INPUT, message=str(exc))
        if out_of_memory(exc):
            self.release_memory()
            size = f"{job.params.size} px"
            return JobFailed(
                job_id=job.id,
                kind=FailureKind.OUT_OF_MEMORY,
                message=f"the {self.where} ran out of memory at {size}; try a smaller size",
            )
        error_id = uuid.uuid4().hex[:8]
        log.error("job %s failed (error id %s)", job.id, error_id, exc_info=exc)
        return JobFailed(
            job_id=job.id,
            kind=FailureKind.INTERNAL,
            message=f"something went wrong on the worker (error id {error_id})",
        )

    def release_memory(self) -> None:
        """After running out of memory: drop the style cache and the allocator's free blocks."""
        self.cache.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _peak_memory(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB

    def memory_now(self) -> tuple[int, int, int]:
        """Bytes in use now, the peak since the last job started, and the bytes reserved (CUDA:
        allocated and reserved by torch; CPU: this process's resident size for both, and its
        peak since it started). Any thread."""
        if self.device.type == "cuda":
            reserved = int(torch.cuda.memory_reserved(self.device))
            return int(torch.cuda.memory_allocated(self.device)), self._peak_memory(), reserved
        resident = resident_bytes()
        return resident, self._peak_memory(), resident


def device_total_bytes(device: torch.device) -> int:
    """The card's memory (CUDA), else the host's (Linux: MemTotal; 0 where unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 0


def resident_bytes() -> int:
    """This process's resident memory now (Linux: /proc/self/statm; elsewhere its peak)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Refused(Exception):
    """A job refused before it runs (bad input, too large): its kind and message."""

    def __init__(self, kind: FailureKind, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message
