"""JobRunner: runs one job on warm models and turns everything that can happen into an event.

It knows nothing of pipes, processes or queues: `run(job, emit, should_cancel)` emits progress
through `emit` and returns the terminal event. The local pool's worker process is a thin adapter
around it; a Celery task or a batching worker would be others.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from bot.executor.protocol import (
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

log = logging.getLogger(__name__)

PREVIEW_SIDE = 256


class StyleTargetCache(MutableMapping):
    """An LRU of style Gram matrices, keyed by the engine (image hash and target parameters)."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._data: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        self._data.move_to_end(key)
        self.hits += 1
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


class JobRunner:
    """Loads VGG-19 once (per pooling), warms it up, then runs jobs one at a time."""

    def __init__(self, spec: RunnerSpec):
        import torch

        from bot.engine.devices import parse_device
        from bot.engine.vgg import load_vgg19

        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.device = parse_device(spec.device)
        self.models = {"max": load_vgg19(spec.weights, pooling="max", device=self.device)}
        self.weights_label = self.models["max"].source.label
        self.device_name = str(self.device)
        if self.device.type == "cuda":
            self.device_name = f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        self.cache = StyleTargetCache(spec.cache_size)
        self._warm_up()

    def _warm_up(self) -> None:
        """A short run at the shapes members send most, through the same path as a job (model,
        policy, optimiser), so that the first job does not pay for kernel and library set-up."""
        import torch

        from bot.engine import colour
        from bot.engine.params import StyleParams
        from bot.engine.transfer import stylize

        shapes = [(512, 512), (512, 384)] if self.device.type == "cuda" else [(64, 64)]
        generator = torch.Generator().manual_seed(0)
        for width, height in shapes:
            content = colour.to_image(torch.rand(3, height, width, generator=generator))
            stylize(
                self.models["max"],
                content,
                [content],
                StyleParams(size=max(width, height), steps=3, seed=0),
            )

    def memory_budget(self) -> int | None:
        """Bytes the jobs of this worker may take at once: 80 % of the GPU memory free after
        loading the model, at most STYLEBOT_GPU_MEMORY_LIMIT; on the CPU that limit, or None."""
        from bot.engine.devices import memory_budget

        return memory_budget(self.device, self.spec.memory_limit)

    def _model(self, pooling: str):
        from bot.engine.vgg import load_vgg19

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
            painting = self.prepare(job, emit, should_cancel)
            while not painting.done:
                painting.step_alone()
            return self.finish(job, painting)
        except reraise:
            raise
        except Exception as exc:
            return self.ending(job, exc)

    def prepare(self, job: Job, emit: Callable[[Event], None], should_cancel: Callable[[], bool]):
        """Decode and check the job's pictures and set up its Painting (the first level's targets
        included). Raises what `ending` turns into the job's terminal event."""
        import torch

        from bot.engine import imaging
        from bot.engine.devices import policy_for
        from bot.engine.imaging import ImageError
        from bot.engine.painting import Painting
        from bot.engine.params import InvalidParams, StyleParams
        from bot.engine.transfer import Progress

        limits = self.spec.limits
        try:
            params = StyleParams.from_dict(job.params).validate()
            content = imaging.decode(job.content, limits, name="content image")
            styles = [imaging.decode(s, limits, name="style image") for s in job.styles]
            params.blend_weights(len(styles))
        except (InvalidParams, ImageError, TypeError) as exc:
            raise _Refused(FailureKind.BAD_INPUT, str(exc)) from None
        plan = self.plan(params, content.size)

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
                    preview=preview,
                    sent_at=time.time(),
                )
            )

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        hits_before = self.cache.hits
        painting = Painting(
            self._model(params.pooling),
            content,
            styles,
            params,
            policy_for(self.device, "auto"),
            on_progress=on_progress,
            should_cancel=should_cancel,
            style_cache=self.cache,
            plan=plan,
        )
        if plan.tile is not None:
            log.info(
                "job %s: %dx%d in tiles of %d px, L-BFGS history %d, about %.1f GB",
                job.id,
                *imaging.fit_size(*content.size, params.size),
                plan.tile,
                plan.history,
                plan.bytes / 2**30,
            )
        painting.cache_hits_before = hits_before  # type: ignore[attr-defined]
        return painting

    def plan(self, params, content_size: tuple[int, int]):
        """How the job fits in what this worker may use (bot/engine/memory.py): the whole picture,
        a shorter L-BFGS history or tiles. Refuses, before anything runs, a job that fits in no
        way, naming the largest size that does."""
        from bot.engine import imaging
        from bot.engine.devices import policy_for
        from bot.engine.memory import does_not_fit, plan_for

        budget = self.memory_budget()
        width, height = imaging.fit_size(*content_size, params.size)
        precision = policy_for(self.device, "auto").precision
        found = plan_for(params, width, height, budget, precision=precision)
        if found is not None:
            return found
        assert budget is not None
        where = "GPU" if self.device.type == "cuda" else "worker"
        raise _Refused(
            FailureKind.OUT_OF_MEMORY,
            does_not_fit(params, width, height, budget, precision=precision, where=where),
        )

    def finish(self, job: Job, painting) -> JobDone:
        """The finished painting as the job's JobDone (encoded to fit the job's upload limit)."""
        from bot.engine import imaging

        result = painting.result()
        if job.result_limit:
            data, fmt = imaging.encode_to_fit(result.image, job.result_limit)
        else:
            data, fmt = imaging.encode(result.image, "png"), "png"
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
            cache_hit=self.cache.hits > getattr(painting, "cache_hits_before", self.cache.hits),
            peak_memory_bytes=self._peak_memory(),
        )

    def ending(self, job: Job, exc: BaseException) -> Terminal:
        """The terminal event for an exception raised while preparing, stepping or finishing."""

        from bot.engine.painting import out_of_memory
        from bot.engine.params import InvalidParams
        from bot.engine.transfer import Cancelled

        if isinstance(exc, _Refused):
            return JobFailed(job_id=job.id, kind=exc.kind, message=exc.message)
        if isinstance(exc, Cancelled):
            return JobCancelled(job_id=job.id)
        if isinstance(exc, InvalidParams):  # NonFiniteLoss included: its message says what to lower
            return JobFailed(job_id=job.id, kind=FailureKind.BAD_INPUT, message=str(exc))
        if out_of_memory(exc):
            self._release_memory()
            where = "GPU" if self.device.type == "cuda" else "worker"
            size = f"{job.params['size']} px" if job.params.get("size") else "this size"
            return JobFailed(
                job_id=job.id,
                kind=FailureKind.OUT_OF_MEMORY,
                message=f"the {where} ran out of memory at {size}; try a smaller size",
            )
        error_id = uuid.uuid4().hex[:8]
        log.error("job %s failed (error id %s)", job.id, error_id, exc_info=exc)
        return JobFailed(
            job_id=job.id,
            kind=FailureKind.INTERNAL,
            message=f"something went wrong on the worker (error id {error_id})",
        )

    def _peak_memory(self) -> int:
        import resource

        import torch

        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB

    def _release_memory(self) -> None:
        import torch

        self.cache.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class _Refused(Exception):
    def __init__(self, kind: FailureKind, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message
