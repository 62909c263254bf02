"""What a run tells while it goes and what it ends with: Progress, the Reporter that makes it,
Result, and the two ways a run stops early (Cancelled, NonFiniteLoss)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from PIL import Image

from bot.engine.devices import DevicePolicy
from bot.engine.params import CONVERGENCE_WINDOW, StyleParams
from bot.media.clips import Clip


class Cancelled(Exception):
    """The run was cancelled through `should_cancel`."""


class NonFiniteLoss(ArithmeticError):
    """J became NaN or infinite while painting: the weights or the rate are too large for this
    picture. A failure of the painting, not a refusal of its settings (those are InvalidParams,
    raised before a step): the worker ends it as FailureKind.DIVERGED."""


@dataclass(frozen=True)
class Progress:
    step: int  # steps done, over all pyramid levels
    total: int
    level: int  # 1-based pyramid level
    levels: int
    losses: dict[str, float]  # "content", "style", "tv" (weighted terms) and "total"
    elapsed: float  # seconds since the run started
    eta: float | None  # seconds left, estimated from the work done so far
    # the share of the run's work done (a coarse step counts by its pixels): what a bar shows
    fraction: float = 0.0
    preview: Image.Image | None = None  # every `preview_every` steps, else None


@dataclass(frozen=True)
class Result:
    clip: Clip  # the painted frames with the content's timing (a still: a clip of one frame)
    seed: int
    steps: int
    elapsed: float
    losses: dict[str, float]
    device: str
    precision: str = "fp32"
    level_seconds: list[float] = field(default_factory=list)
    converged_at: int | None = None  # the final level stopped improving after this many steps
    flicker: float | None = None  # a moving picture's warping error (bot/engine/flow.py)

    @property
    def frames(self) -> list[Image.Image]:
        return self.clip.frames

    @property
    def image(self) -> Image.Image:
        """The first frame (a still's picture)."""
        return self.clip.frames[0]


ProgressCallback = Callable[[Progress], None]


class Reporter:
    """Counts steps over the whole pyramid, reports progress, checks for cancel and for NaN.

    Reading the loss back to the host waits for the device, so on a GPU it happens every
    `policy.sync_interval` seconds (and at previews and at the end of a level), letting the host
    queue the next steps meanwhile. NaN and inf are caught at each read.
    """

    def __init__(
        self,
        params: StyleParams,
        steps: list[int],
        pixels: list[int],
        policy: DevicePolicy,
        on_progress: ProgressCallback | None,
        should_cancel: Callable[[], bool] | None,
    ):
        self.params, self.steps, self.policy = params, steps, policy
        self.work = [
            n * p for n, p in zip(steps, pixels, strict=True)
        ]  # each level's, in pixel-steps
        self.on_progress, self.should_cancel = on_progress, should_cancel
        self.total = sum(steps)
        self.started = self._last_read = time.perf_counter()
        # (time, work done) at the first report: the ETA counts from there, so that the first
        # step's warm-up (the style's features, allocations, kernels chosen) is not taken as the pace
        self._pace_from: tuple[float, float] | None = None
        self.step = 0  # steps taken, over all levels
        self.losses: dict[str, float] = {}
        self.convergence = Convergence(params.tolerance)

    def after_step(
        self,
        terms: dict[str, torch.Tensor],
        level: int,
        level_step: int,
        preview: Callable[[], Image.Image],
    ) -> bool:
        """Count a step (the `level_step`-th of pyramid level `level`); report progress (with
        `preview()` when one is due), check for cancel and NaN. Returns whether the level has
        converged (see `Convergence`)."""
        self.step += 1
        params = self.params
        steps = self.steps[level - 1]
        before = sum(self.steps[: level - 1])  # the steps of the levels before this one
        preview_due = bool(params.preview_every) and (
            self.step % params.preview_every == 0 or before + level_step == self.total
        )
        level_end = level_step == steps
        converged = False
        now = time.perf_counter()
        if preview_due or level_end or now - self._last_read >= self.policy.sync_interval:
            self._last_read = now
            self.losses = read_losses(terms, self.step)
            converged = not level_end and self.convergence.converged(
                level, level_step, self.losses["total"]
            )
            if self.on_progress is not None:
                elapsed = now - self.started
                ended = steps if converged else level_step  # a converged level counts as done
                done = sum(self.work[: level - 1]) + self.work[level - 1] * ended / steps
                eta = self._eta(now, done)
                picture = preview() if preview_due else None
                self.on_progress(
                    Progress(
                        step=before + ended,
                        total=self.total,
                        level=level,
                        levels=len(self.work),
                        losses=self.losses,
                        elapsed=elapsed,
                        eta=eta,
                        fraction=done / sum(self.work),
                        preview=picture,
                    )
                )
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled()
        return converged

    def _eta(self, now: float, done: float) -> float | None:
        """Seconds left at the pace since the first report; None until there is a pace."""
        if self._pace_from is None:
            self._pace_from = (now, done)
            return None
        since, done_then = self._pace_from
        if done <= done_then:
            return None
        return (now - since) / (done - done_then) * (sum(self.work) - done)


class Convergence:
    """When a pyramid level has stopped improving: J fell by less than `tolerance` (a fraction)
    over the last CONVERGENCE_WINDOW steps of the level. It looks only at the losses the Reporter
    reads (every step on a CPU, every `sync_interval` seconds on a GPU), comparing the newest with
    the newest read at least a window older; `tolerance` 0 never stops a level early."""

    def __init__(self, tolerance: float, window: int = CONVERGENCE_WINDOW):
        self.tolerance, self.window = tolerance, window
        self.level = 0
        self.reads: list[tuple[int, float]] = []  # (level step, J) of this level's reads

    def converged(self, level: int, level_step: int, total: float) -> bool:
        if level != self.level:
            self.level, self.reads = level, []
        self.reads.append((level_step, total))
        if self.tolerance <= 0:
            return False
        older = [j for step, j in self.reads if step <= level_step - self.window]
        if not older:
            return False
        self.reads = [r for r in self.reads if r[0] > level_step - 2 * self.window]
        before = older[-1]
        return before > 0 and (before - total) / before < self.tolerance


def read_losses(terms: dict[str, torch.Tensor], step: int) -> dict[str, float]:
    """The loss terms as floats (one transfer); NonFiniteLoss if any is NaN or infinite."""
    values = torch.stack([v.detach().float() for v in terms.values()]).tolist()
    losses = dict(zip(terms, values, strict=True))
    if not all(math.isfinite(v) for v in values):
        bad = ", ".join(f"{k} {v}" for k, v in losses.items() if not math.isfinite(v))
        raise NonFiniteLoss(
            f"the loss became infinite or NaN at step {step} ({bad}): the weights or the learning rate are "
            "too large for this picture; lower the strength, the style/content weights or the learning rate"
        )
    return losses
