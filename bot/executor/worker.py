"""The worker process: loads VGG-19 once, then runs jobs one at a time and reports events.

Messages are plain dicts over a pipe. From the parent: {"op": "run", "seq", "job", "time_limit"}
and {"op": "stop"}. To the parent: {"op": "ready", "device", "weights"}, {"op": "fatal",
"message"} and {"op": "event", "seq", "event"}. Cancellation is a shared integer: when it equals
the running job's `seq`, the engine stops at its next step.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("stylebot.worker")

PREVIEW_SIDE = 256


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    device: str
    weights: str | None
    cache_size: int
    threads: int | None


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

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def worker_main(spec: WorkerSpec, inbox, outbox, cancel_seq) -> None:
    """Process entry point (spawned). Never returns an exception to the parent: it reports."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides what stops.
    # SIGTERM keeps its default, so that a worker can always be terminated.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker {spec.name}: %(levelname)s %(message)s")
    parent = os.getppid()
    try:
        runner = _Runner(spec, outbox, cancel_seq, parent)
    except Exception as exc:  # weights missing or broken, bad device: the parent reports it
        outbox.send({"op": "fatal", "message": str(exc) or exc.__class__.__name__})
        return
    outbox.send({"op": "ready", "device": runner.device_name, "weights": runner.weights_label})
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message.get("op") == "stop":
            return
        if message.get("op") == "run":
            runner.run(message["seq"], message["job"], message["time_limit"])


class _Runner:
    def __init__(self, spec: WorkerSpec, outbox, cancel_seq, parent_pid: int):
        import torch

        from bot.engine.devices import parse_device
        from bot.engine.vgg import load_vgg19

        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec, self.outbox, self.cancel_seq, self.parent_pid = spec, outbox, cancel_seq, parent_pid
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
        from bot.engine import colour
        from bot.engine.params import StyleParams
        from bot.engine.transfer import stylize

        shapes = [(512, 512), (512, 384)] if self.device.type == "cuda" else [(64, 64)]
        for width, height in shapes:
            content = colour.to_image(torch_rand(3, height, width))
            stylize(self.models["max"], content, [content], StyleParams(size=max(width, height), steps=3, seed=0))

    def _model(self, pooling: str):
        from bot.engine.vgg import load_vgg19

        if pooling not in self.models:
            self.models[pooling] = load_vgg19(self.spec.weights, pooling=pooling, device=self.device)
        return self.models[pooling]

    def _send(self, seq: int, event) -> None:
        self.outbox.send({"op": "event", "seq": seq, "event": event.to_dict()})

    def run(self, seq: int, job_data: dict, time_limit: float) -> None:
        from bot.executor.protocol import Job, JobCancelled, JobFailed

        job = Job.from_dict(job_data)
        deadline = time.monotonic() + time_limit
        state = {"timed_out": False}

        def should_cancel() -> bool:
            if self.cancel_seq.value == seq or os.getppid() != self.parent_pid:
                return True
            if time.monotonic() > deadline:
                state["timed_out"] = True
                return True
            return False

        try:
            event = self._stylize(job, seq, should_cancel)
        except _Refused as exc:
            event = JobFailed(job_id=job.id, kind=exc.kind, message=exc.message)
        except _CancelledRun:
            if state["timed_out"]:
                event = JobFailed(job_id=job.id, kind="timeout", message=f"the job ran past its time limit of {time_limit:.0f} s")
            else:
                event = JobCancelled(job_id=job.id)
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("job %s failed (error id %s)", job.id, error_id)
            event = JobFailed(job_id=job.id, kind="internal", message=f"something went wrong on the worker (error id {error_id})")
        self._send(seq, event)

    def _stylize(self, job, seq: int, should_cancel):
        import torch

        from bot.engine import imaging
        from bot.engine.imaging import ImageError
        from bot.engine.params import InvalidParams, StyleParams
        from bot.engine.transfer import Cancelled, stylize
        from bot.executor.protocol import JobDone, JobProgress

        try:
            params = StyleParams.from_dict(job.params).validate()
            content = imaging.decode(job.content, name="content image")
            styles = [imaging.decode(s, name="style image") for s in job.styles]
            params.blend_weights(len(styles))
        except (InvalidParams, ImageError, TypeError) as exc:
            raise _Refused("bad_input", str(exc)) from None

        def on_progress(progress) -> None:
            preview = None
            if progress.preview is not None:
                small = imaging.resize(progress.preview, PREVIEW_SIDE)
                preview = imaging.encode(small, "jpeg", quality=80)
            self._send(seq, JobProgress(job_id=job.id, step=progress.step, total=progress.total, losses=progress.losses,
                                        elapsed=progress.elapsed, eta=progress.eta, preview=preview))

        hits_before = self.cache.hits
        width, height = imaging.fit_size(*content.size, params.size)
        try:
            result = stylize(self._model(params.pooling), content, styles, params, on_progress=on_progress,
                             should_cancel=should_cancel, style_cache=self.cache)
        except Cancelled:
            raise _CancelledRun() from None
        except InvalidParams as exc:
            raise _Refused("bad_input", str(exc)) from None
        except torch.cuda.OutOfMemoryError:
            self._release_memory()
            raise _Refused("out_of_memory", f"the GPU ran out of memory at {width}x{height}; try a smaller size") from None
        except RuntimeError as exc:
            if "out of memory" not in str(exc) and "can't allocate memory" not in str(exc):
                raise
            self._release_memory()
            raise _Refused("out_of_memory", f"the worker ran out of memory at {width}x{height}; try a smaller size") from None
        return JobDone(
            job_id=job.id, image=imaging.encode(result.image, "png"), width=result.image.width, height=result.image.height,
            seed=result.seed, steps=result.steps, seconds=result.elapsed, device=self.device_name,
            weights=self.weights_label, cache_hit=self.cache.hits > hits_before,
        )

    def _release_memory(self) -> None:
        import gc

        import torch

        self.cache.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def torch_rand(*shape: int):
    import torch

    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


class _Refused(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


class _CancelledRun(Exception):
    pass
