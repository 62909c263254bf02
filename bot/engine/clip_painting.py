"""A moving picture's optimisation: `ClipPainting`, the clip counterpart of `Painting`.

Every frame is its own picture with its own content target and its own optimiser, as a still
would be; the style targets are shared (computed once). All frames step together: each step is
one pass over the whole clip, `plan.chunk` frames per VGG-19 forward and backward pass (a batch:
frames of one clip share a shape), so the GPU stays full while every frame still sees its
neighbours' latest pixels.

What keeps the frames steady is the temporal cost of Ruder, Dosovitskiy and Brox (2016): for each
pair of neighbouring frames, the mean squared difference, where the content's optical flow is
reliable, between a frame and the frame before it moved along that flow (bot/engine/flow.py).
J = sum over frames of (J_content + J_style) + temporal_weight * sum over pairs of that
difference, and each frame steps on its part of J's gradient. With temporal_weight 0 the frames
are painted independently (the baseline that flickers). Frames start from their own content
(and, for noise starts, all from the same noise), so they start steady.

A clip runs at one pyramid level, its size capped by the server's clip limits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import torch
from PIL import Image

from bot.engine import imaging
from bot.engine.clips import Clip
from bot.engine.devices import DevicePolicy
from bot.engine.flow import Motion, clip_motion, temporal_differences, warping_error
from bot.engine.memory import LBFGS_HISTORY, MemoryPlan
from bot.engine.objective import Objective, StyleCache
from bot.engine.painting import Optimiser, contiguous_leaf
from bot.engine.params import InvalidParams, StyleParams, min_input_side
from bot.engine.progress import NonFiniteLoss, ProgressCallback, Reporter, Result
from bot.engine.pyramid import finish_image, initial_image, level_targets, prepare
from bot.engine.vgg import VGG19Features


class ClipPainting:
    """One moving picture from its frames to its painted frames, one step (a pass over all the
    frames) per `step_alone`. It batches with no other job: its frames are its batch."""

    def __init__(
        self,
        model: VGG19Features,
        clip: Clip,
        styles: Sequence[Image.Image],
        params: StyleParams,
        policy: DevicePolicy,
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
        style_cache: StyleCache | None = None,
        plan: MemoryPlan | None = None,
    ):
        params.validate()
        if not styles:
            raise ValueError("at least one style image is needed")
        self.params, self.policy, self.clip = params, policy, clip
        self.model = policy.prepare_model(model)
        self.device = next(model.parameters()).device
        self.plan = plan or MemoryPlan(0, LBFGS_HISTORY, None, len(clip.frames))
        self.seed = params.seed if params.seed is not None else random.randrange(2**31)
        self.dims = imaging.fit_size(*clip.frames[0].size, params.size)
        min_side = min_input_side((*params.style_layers, *params.content_layers))
        if min(self.dims) < min_side:
            raise InvalidParams(
                f"at size {params.size} the clip's frames become {self.dims[0]}x{self.dims[1]}, too thin for the "
                f"chosen layers: they need at least {min_side} pixels on the short side (use a larger size)"
            )
        frames = [f.resize(self.dims, Image.Resampling.LANCZOS) for f in clip.frames]
        self.motion: Motion = clip_motion(frames, clip.loop)
        self.colour_references = [prepare(f, self.dims) for f in frames]
        cache = style_cache if style_cache is not None else {}  # style targets computed once
        blend = params.blend_weights(len(styles))
        self.objectives: list[Objective] = []
        self.xs: list[torch.Tensor] = []
        self.style_cache_hits = 0
        with policy.applied():
            for frame in frames:
                content_t, style_ts = level_targets(frame, styles, params, self.dims, min_side)
                objective = Objective(self.model, params, content_t, style_ts, blend, cache)
                self.style_cache_hits += objective.cache_hits
                self.objectives.append(objective)
                start = initial_image(
                    content_t, style_ts, params, torch.Generator().manual_seed(self.seed)
                )
                self.xs.append(contiguous_leaf(start.to(self.device)))
        if style_cache is None:
            self.style_cache_hits = 0
        self.optimisers = [Optimiser(x, params, self.plan.history) for x in self.xs]
        self.names = self.objectives[0].names
        self.reporter = Reporter(
            params,
            [params.final_steps],
            [len(frames) * self.dims[0] * self.dims[1]],
            policy,
            on_progress,
            should_cancel,
            self.colour_references[0],
        )
        self.steps_done = 0
        self.finished = False
        self.converged_at: int | None = None
        self.objective_tiles = 0  # clips are not tiled (for the benchmarks' reports)

    # --- what the runner and the batcher need (as Painting) -------------------------------------

    @property
    def frames(self) -> int:
        return len(self.xs)

    @property
    def work(self) -> float:
        """Planned work in still-step equivalents at this size: a step costs one per frame."""
        return float(self.params.final_steps * self.frames)

    @property
    def work_done(self) -> float:
        return float(self.steps_done * self.frames)

    @property
    def done(self) -> bool:
        return self.finished

    @property
    def shape_key(self) -> tuple:
        return ("clip", id(self))

    def step_alone(self) -> None:
        grads, terms = self.gradient()
        for x, optimiser, grad in zip(self.xs, self.optimisers, grads, strict=True):
            optimiser.step(x, grad[None])
        self.steps_done += 1
        shown = self.steps_done // max(1, self.params.preview_every) % self.frames
        self.reporter.colour_reference = self.colour_references[shown]
        converged = self.reporter.after_step(self.xs[shown], terms, 1, self.steps_done)
        if converged:
            self.converged_at = self.steps_done
        if converged or self.steps_done >= self.params.final_steps:
            self.finished = True

    def run(self, after_step: Callable[[], None] | None = None) -> Result:
        while not self.done:
            self.step_alone()
            if after_step is not None:
                after_step()
        return self.result()

    def gradient(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """dJ/dx for every frame (N, 3, H, W) and J's terms per frame: the VGG-19 terms `chunk`
        frames per pass, then the temporal cost over the whole clip."""
        x = torch.cat([f.detach() for f in self.xs])
        grads = torch.empty_like(x)
        sums: dict[str, torch.Tensor] = {}
        chunk = max(1, self.plan.chunk)
        with self.policy.applied():
            for start in range(0, self.frames, chunk):
                part = x[start : start + chunk].clone().requires_grad_(True)
                feats = self.model(part, self.names)
                total = None
                for i in range(part.shape[0]):
                    mine = {n: f[i : i + 1] for n, f in feats.items()}
                    loss, terms = self.objectives[start + i].loss(mine, part[i : i + 1])
                    total = loss if total is None else total + loss
                    for name, value in terms.items():
                        value = value.detach().float()
                        sums[name] = value if name not in sums else sums[name] + value
                assert total is not None
                (grads[start : start + chunk],) = torch.autograd.grad(total, part)
        terms = {name: value / self.frames for name, value in sums.items()}
        if self.params.temporal_weight > 0 and len(self.motion.before):
            moving = x.float().requires_grad_(True)
            temporal = self.params.temporal_weight * temporal_differences(moving, self.motion).sum()
            (extra,) = torch.autograd.grad(temporal, moving)
            grads += extra.to(grads.dtype)
            terms["temporal"] = temporal.detach() / self.frames
            terms["total"] = terms["total"] + terms["temporal"]
        return grads, terms

    def pictures(self) -> list[Image.Image]:
        return [
            finish_image(x, self.params, reference)
            for x, reference in zip(self.xs, self.colour_references, strict=True)
        ]

    def flicker(self) -> float:
        """The warping error of the frames as they stand (bot/engine/flow.py)."""
        stacked = torch.cat([x.detach().float().clamp(0, 1).cpu() for x in self.xs])
        return warping_error(stacked, self.motion)

    def result(self) -> Result:
        assert self.done
        if not all(bool(torch.isfinite(x).all()) for x in self.xs):
            raise NonFiniteLoss(
                "the picture became NaN or infinite: lower the strength, the weights or the learning rate"
            )
        pictures = self.pictures()
        return Result(
            image=pictures[0],
            seed=self.seed,
            steps=self.reporter.step,
            elapsed=time.perf_counter() - self.reporter.started,
            losses=self.reporter.losses,
            device=str(self.device),
            precision=self.policy.precision,
            converged_at=self.converged_at,
            clip=self.clip.with_frames(pictures),
            flicker=self.flicker(),
        )
