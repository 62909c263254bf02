"""The Gatys et al. optimisation: `run_level` optimises the pixels at one size, `stylize` walks
the coarse-to-fine pyramid and returns the picture."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image

from bot.engine import colour, imaging
from bot.engine.devices import DevicePolicy, policy_for
from bot.engine.memory import MemoryPlan
from bot.engine.objective import Objective, StyleCache
from bot.engine.painting import Optimiser, Painting, contiguous_leaf
from bot.engine.params import InvalidParams, StyleParams
from bot.engine.vgg import VGG19Features


class Cancelled(Exception):
    """The run was cancelled through `should_cancel`."""


class NonFiniteLoss(InvalidParams):
    """J became NaN or infinite: the weights or the rate are too large for this picture."""


@dataclass(frozen=True)
class Progress:
    step: int  # steps done, over all pyramid levels
    total: int
    level: int  # 1-based pyramid level
    levels: int
    losses: dict[str, float]  # "content", "style", "tv" (weighted terms) and "total"
    elapsed: float  # seconds since the run started
    eta: float | None  # seconds left, estimated from the work done so far
    preview: Image.Image | None = None  # every `preview_every` steps, else None


@dataclass(frozen=True)
class Result:
    image: Image.Image
    seed: int
    steps: int
    elapsed: float
    losses: dict[str, float]
    device: str
    precision: str = "fp32"
    level_seconds: list[float] = field(default_factory=list)


ProgressCallback = Callable[[Progress], None]


def pyramid_sizes(max_side: int, levels: int) -> list[int]:
    """Longest sides from coarsest to finest; the last is `max_side`."""
    return [max(16, max_side >> (levels - 1 - i)) for i in range(levels)]


def _style_dims(size: tuple[int, int], longest: int, min_side: int) -> tuple[int, int]:
    width, height = imaging.fit_size(*size, longest)
    if min(width, height) < min_side:  # a thin style image is enlarged until the layers fit
        scale = min_side / min(width, height)
        width, height = max(min_side, round(width * scale)), max(min_side, round(height * scale))
    return width, height


def _prepare(image: Image.Image, dims: tuple[int, int]) -> torch.Tensor:
    return colour.to_tensor(image.resize(dims, Image.Resampling.LANCZOS))


class _Reporter:
    """Counts steps over the whole pyramid, reports progress, checks for cancel and for NaN.

    Reading the loss back to the host waits for the device, so on a GPU it happens every
    `policy.sync_interval` seconds (and at previews and at the end of a level), letting the host
    queue the next steps meanwhile. NaN and inf are caught at each read.
    """

    def __init__(
        self,
        params: StyleParams,
        work: list[int],
        policy: DevicePolicy,
        on_progress: ProgressCallback | None,
        should_cancel: Callable[[], bool] | None,
        colour_reference: torch.Tensor,
    ):
        self.params, self.work, self.policy = params, work, policy
        self.on_progress, self.should_cancel = on_progress, should_cancel
        self.colour_reference = colour_reference
        self.total = params.steps * len(work)
        self.started = self._last_read = time.perf_counter()
        self.step = 0
        self.losses: dict[str, float] = {}

    def after_step(self, x: torch.Tensor, terms: dict[str, torch.Tensor], level: int) -> None:
        self.step += 1
        params = self.params
        preview_due = bool(params.preview_every) and (
            self.step % params.preview_every == 0 or self.step == self.total
        )
        level_end = self.step == params.steps * level
        now = time.perf_counter()
        if preview_due or level_end or now - self._last_read >= self.policy.sync_interval:
            self._last_read = now
            self.losses = read_losses(terms, self.step)
            if self.on_progress is not None:
                elapsed = now - self.started
                done = (
                    sum(self.work[: level - 1])
                    + self.work[level - 1] * (self.step - params.steps * (level - 1)) / params.steps
                )
                eta = elapsed / done * (sum(self.work) - done) if done > 0 else None
                preview = finish_image(x, params, self.colour_reference) if preview_due else None
                self.on_progress(
                    Progress(
                        self.step,
                        self.total,
                        level,
                        len(self.work),
                        self.losses,
                        elapsed,
                        eta,
                        preview,
                    )
                )
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled()


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


def run_level(
    x: torch.Tensor,
    objective: Objective,
    params: StyleParams,
    after_step: Callable[[torch.Tensor, dict[str, torch.Tensor]], None],
) -> torch.Tensor:
    """`params.steps` optimiser steps on the pixels `x`, starting from `x`; returns the result.

    The image being optimised is always kept contiguous, whatever the model's memory format: the
    optimisers flatten it, and a channels_last image (and so its gradient) cannot be viewed flat.
    """
    x = contiguous_leaf(x)
    optimiser = Optimiser(x, params)
    for _ in range(params.steps):
        grad, terms = objective.gradient(x)
        optimiser.step(x, grad)
        after_step(x, terms)
    return x.detach()


def stylize(
    model: VGG19Features,
    content: Image.Image,
    styles: Sequence[Image.Image],
    params: StyleParams,
    *,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    style_cache: StyleCache | None = None,
    precision: str = "auto",
    policy: DevicePolicy | None = None,
    plan: MemoryPlan | None = None,
) -> Result:
    """Paint `content` in the style of `styles`, coarse to fine.

    `policy` (default: `policy_for(the model's device, precision)`) decides memory format,
    autocast and backend flags; `plan` (bot/engine/memory.py) the L-BFGS history and tiling. Raises Cancelled if `should_cancel()` turns true, NonFiniteLoss if
    J stops being finite, InvalidParams for parameters that cannot work.
    """
    policy = policy or policy_for(next(model.parameters()).device, precision)
    painting = Painting(
        model,
        content,
        styles,
        params,
        policy,
        on_progress=on_progress,
        should_cancel=should_cancel,
        style_cache=style_cache,
        plan=plan,
    )
    while not painting.done:
        painting.step_alone()
    return painting.result()


def _level_targets(
    content: Image.Image,
    styles: Sequence[Image.Image],
    params: StyleParams,
    dims: tuple[int, int],
    min_side: int,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Content and style tensors (on the CPU) for a level of size `dims`, colour mode applied."""
    content_t = _prepare(content, dims)
    style_side = max(16, round(max(dims) * params.style_scale))
    style_ts = [_prepare(s, _style_dims(s.size, style_side, min_side)) for s in styles]
    if params.preserve_colors == "luminance":
        style_ts = [colour.match_luminance(s, content_t) for s in style_ts]
        content_t = colour.luminance(content_t)
    elif params.preserve_colors == "match":
        style_ts = [colour.match_colors(s, content_t) for s in style_ts]
    return content_t, style_ts


def _initial_image(
    content: torch.Tensor, params: StyleParams, generator: torch.Generator
) -> torch.Tensor:
    if params.init == "content":
        return content.clone()
    noise = torch.rand(content.shape, generator=generator).to(content)
    if params.init == "noise":
        return noise
    # "content+noise", as in the seed: a noisy copy of the content image
    return params.noise_ratio * noise + (1.0 - params.noise_ratio) * content


def finish_image(
    x: torch.Tensor, params: StyleParams, colour_reference: torch.Tensor
) -> Image.Image:
    """The optimised pixels as a picture (the content's colours put back for `luminance`)."""
    result = x.detach().float().cpu().clamp(0, 1)
    if params.preserve_colors == "luminance":
        if colour_reference.shape[-2:] != result.shape[-2:]:  # a preview at a coarse pyramid level
            colour_reference = F.interpolate(
                colour_reference, size=result.shape[-2:], mode="bilinear", align_corners=False
            )
        result = colour.combine_luminance(result, colour_reference)
    return colour.to_image(result)
