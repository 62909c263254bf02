"""A job's optimisation as an object advanced one step at a time, alone or in a batch.

A still is a clip of one frame. `Painting` holds a job's frames (one for a still), its pyramid
levels, the current level's objective of each frame, the pixels and each frame's optimiser state
(its own L-BFGS history or Adam moments: nothing is shared between frames or jobs). A step is one
pass over all the frames, `plan.chunk` of them per VGG-19 forward and backward pass
(`frame_gradients`), plus, for a moving picture, the temporal cost that keeps neighbouring
frames steady (bot/engine/objective.py `Temporal`). `step_together()` runs one step of several
one-frame paintings of the same shape with one pass over all of them, then gives each its own
gradient. VGG-19 treats the images of a batch independently, so a frame's gradient does not
depend on its neighbours in the pass: batched or alone, it takes the same steps (up to the
rounding of the convolution algorithms chosen for the batch size).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from bot.engine.devices import DevicePolicy
from bot.engine.flow import Motion, clip_motion, warping_error
from bot.engine.lbfgs import LBFGS
from bot.engine.memory import LBFGS_HISTORY, MemoryPlan, tile_margin
from bot.engine.objective import Objective, StyleCache, Temporal
from bot.engine.params import (
    StyleParams,
    draw_seed,
    fit_size,
    min_input_side,
)
from bot.engine.progress import NonFiniteLoss, ProgressCallback, Reporter, Result
from bot.engine.pyramid import (
    finish_image,
    initial_image,
    level_targets,
    prepare,
    pyramid_sizes,
)
from bot.engine.tiling import TileSize
from bot.engine.vgg import VGG19Features
from bot.media.clips import Clip


class Optimiser:
    """The optimiser of one image at one level: L-BFGS (bot/engine/lbfgs.py) or Adam, stepped
    with a gradient computed elsewhere (alone, or as this image's slice of a batch's)."""

    def __init__(self, x: torch.Tensor, params: StyleParams, history: int = LBFGS_HISTORY):
        self.lbfgs = (
            LBFGS(x, lr=params.lr, history=history) if params.optimizer == "lbfgs" else None
        )
        self.adam = None if self.lbfgs else torch.optim.Adam([x], lr=params.lr)

    @torch.no_grad()
    def step(self, x: torch.Tensor, grad: torch.Tensor) -> None:
        if self.lbfgs is not None:
            self.lbfgs.step(x, grad)
            return
        assert self.adam is not None
        x.grad = grad.to(x.dtype)
        self.adam.step()
        x.grad = None
        x.clamp_(0, 1)


def contiguous_leaf(x: torch.Tensor) -> torch.Tensor:
    """The image to optimise: always contiguous, whatever the model's memory format (the
    optimisers flatten it, and a channels_last image and its gradient cannot be viewed flat)."""
    return x.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)


class Painting:
    """A job from its pictures to its result, one optimiser step per `apply`.

    `content` is a Clip (bot/media/clips.py), or a still picture (a clip of one frame). `plan`
    (bot/engine/memory.py) sets the L-BFGS history, the frames per pass and, for pictures beyond
    memory, the tile size: a level larger than the tile is optimised tile by tile
    (bot/engine/tiling.py). A moving picture's frames are kept steady along the content's motion
    at the final level (its `temporal_weight`); clips run one level (clips.clip_params).
    """

    def __init__(
        self,
        model: VGG19Features,
        content: Clip | Image.Image,
        styles: Sequence[Image.Image],
        params: StyleParams,
        policy: DevicePolicy,
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
        style_cache: StyleCache | None = None,
        plan: MemoryPlan | None = None,
        canvas: tuple[int, int] | None = None,
    ):
        if not styles:
            raise ValueError("at least one style image is needed")
        self.clip = content if isinstance(content, Clip) else Clip.still(content)
        self.params, self.policy = params, policy
        self.model = policy.prepare_model(model)
        self.device = next(model.parameters()).device
        self.styles = list(styles)
        self.blend = params.blend_weights(len(styles))
        self.style_cache = style_cache
        self.plan = plan or MemoryPlan(0, LBFGS_HISTORY)
        # a caller that settles its jobs (the bot, the command line) has drawn it already
        self.seed = params.seed if params.seed is not None else draw_seed()
        out_w, out_h = self.out_dims = fit_size(*self.clip.frames[0].size, params.size)
        # the shape it is painted at: its shape bucket's (bot/media/buckets.py), or its own
        paint_w, paint_h = canvas or self.out_dims
        if max(paint_w, paint_h) != max(out_w, out_h):
            raise ValueError(f"a canvas of {paint_w}x{paint_h} is not one for {out_w}x{out_h}")
        self.min_side = min_input_side((*params.style_layers, *params.content_layers))
        self.level_dims = [  # coarse levels too small for the layers are left out
            d
            for d in (
                fit_size(paint_w, paint_h, s) for s in pyramid_sizes(params.size, params.levels)
            )
            if min(d) >= self.min_side
        ]
        self.colour_references = [prepare(f, (paint_w, paint_h)) for f in self.clip.frames]
        self.temporal = (
            Temporal(self._motion((out_w, out_h)), params.temporal_weight)
            if self.frames > 1
            else None
        )
        self.level_step_counts = params.level_steps(len(self.level_dims))
        self.reporter = Reporter(
            params,
            self.level_step_counts,
            [self.frames * w * h for w, h in self.level_dims],
            policy,
            on_progress,
            should_cancel,
        )
        self.objective_tiles = 0  # tiles of the last level that was tiled (for benchmarks)
        self.style_cache_hits = 0  # the first frame's style targets found in `style_cache`
        self.level = 0  # 1-based once started
        self.level_steps = 0
        self.work_done = 0.0  # full-size step equivalents of the steps taken so far (see `work`)
        self.converged_at: int | None = None  # steps of the final level, when it stopped early
        self.level_seconds: list[float] = []
        self._level_started = 0.0
        self.xs: list[torch.Tensor] = []  # each frame's pixels at the current level
        self._content_ts: list[torch.Tensor] = []  # each frame's content target (CPU)
        self.objectives: list[Objective] = []
        self.optimisers: list[Optimiser] = []
        self._next_level()

    @property
    def frames(self) -> int:
        return len(self.clip.frames)

    @property
    def what(self) -> str:
        """How messages name the content."""
        return self.clip.what

    @property
    def x(self) -> torch.Tensor:
        """The first frame's pixels (a still's only ones)."""
        return self.xs[0]

    @property
    def objective(self) -> Objective | None:
        """The first frame's objective at the current level (None once done)."""
        return self.objectives[0] if self.objectives else None

    @property
    def work(self) -> float:
        """The run's planned work in full-size step equivalents: a step at a level with a quarter
        of the final pixels counts a quarter, a step of a clip one per frame (a level that
        converges takes less: `work_done`)."""
        width, height = self.level_dims[-1]
        return self.frames * sum(
            n * w * h / (width * height)
            for n, (w, h) in zip(self.level_step_counts, self.level_dims, strict=True)
        )

    @property
    def step_work(self) -> float:
        """The work of one step at the current level, in full-size step equivalents."""
        width, height = self.level_dims[-1]
        w, h = self.level_dims[min(self.level, len(self.level_dims)) - 1]
        return self.frames * w * h / (width * height)

    def pictures(self) -> list[Image.Image]:
        """Every frame as it stands, at the final size (a coarse level's are enlarged)."""
        return [self._picture(i) for i in range(self.frames)]

    def picture(self) -> Image.Image:
        """The first frame as it stands, at the final size."""
        return self._picture(0)

    def flicker(self) -> float | None:
        """A moving picture's warping error as it stands (bot/engine/flow.py); None for a still."""
        if self.temporal is None:
            return None
        stacked = torch.cat([x.detach().float().clamp(0, 1).cpu() for x in self.xs])
        return warping_error(stacked, self.temporal.motion)

    # --- what a batcher needs -------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.level > len(self.level_dims)

    @property
    def shape_key(self) -> tuple:
        """Paintings with equal keys can share a forward pass: one untiled frame of one shape
        (a tiled painting or a clip, whose frames are its own batch, shares with none)."""
        objective = self.objective
        assert objective is not None
        if objective.tiled or self.frames > 1:
            return ("alone", id(self))
        return (tuple(self.x.shape), objective.names, self.model.pooling, id(self.model))

    def apply(self, grads: Sequence[torch.Tensor], terms: dict[str, torch.Tensor]) -> None:
        """One optimiser step of each frame with its gradient; then progress, cancel and NaN
        checks (Cancelled and NonFiniteLoss come from here), and the next level when this one is
        over."""
        for x, optimiser, grad in zip(self.xs, self.optimisers, grads, strict=True):
            optimiser.step(x, grad)
        self.level_steps += 1
        self.work_done += self.step_work
        converged = self.reporter.after_step(terms, self.level, self.level_steps, self._preview)
        if converged or self.level_steps == self.level_step_counts[self.level - 1]:
            if converged and self.level == len(self.level_dims):
                self.converged_at = self.level_steps
            self.level_seconds.append(time.perf_counter() - self._level_started)
            self._next_level()

    def gradient(self) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """dJ/dx of every frame ((1, 3, H, W) each) at the pixels as they stand, and J's terms
        (averaged over the frames): the VGG-19 terms `plan.chunk` frames a pass, then the
        temporal cost over the whole clip."""
        grads, all_terms = frame_gradients(
            self.model,
            self.policy,
            list(zip(self.objectives, self.xs, strict=True)),
            self.plan.chunk,
        )
        terms = mean_terms(all_terms)
        if self.temporal is not None and self.level == len(self.level_dims):
            extra, value = self.temporal.gradient(self.xs)
            if extra is not None:
                grads = [g + e.to(g.dtype) for g, e in zip(grads, extra, strict=True)]
                terms["temporal"] = value / self.frames
                terms["total"] = terms["total"] + terms["temporal"]
        return grads, terms

    def step_alone(self) -> None:
        self.apply(*self.gradient())

    def run(self, after_step: Callable[[], None] | None = None) -> Result:
        """Step alone to the end (the loop of every run that is not batched); `after_step` is
        called after each step (benchmarks time the steps with it)."""
        while not self.done:
            self.step_alone()
            if after_step is not None:
                after_step()
        return self.result()

    def result(self) -> Result:
        assert self.done and self.xs
        if not all(bool(torch.isfinite(x).all()) for x in self.xs):
            raise NonFiniteLoss(
                "the picture became NaN or infinite: lower the strength, the weights or the learning rate"
            )
        return Result(
            clip=self.clip.with_frames(self.pictures()),
            seed=self.seed,
            steps=self.reporter.step,
            elapsed=time.perf_counter() - self.reporter.started,
            losses=self.reporter.losses,
            device=str(self.device),
            precision=self.policy.precision,
            level_seconds=self.level_seconds,
            converged_at=self.converged_at,
            flicker=self.flicker(),
        )

    # --- inside ---------------------------------------------------------------------------------

    def _picture(self, frame: int) -> Image.Image:
        """The frame at the member's exact shape (from a coarse level, or from its bucket).
        Lanczos: a bicubic round trip of a result blurs it enough to move its style distance by
        7-20 % (measured on the six pairs), Lanczos by 2-3 % (docs/benchmarks.md)."""
        image = finish_image(self.xs[frame], self.params, self.colour_references[frame])
        final = self.out_dims
        return image if image.size == final else image.resize(final, Image.Resampling.LANCZOS)

    def _preview(self) -> Image.Image:
        """What a preview shows: the frames in turn, one preview after another, at the current
        level's size (a coarse level's preview is small: it is what there is)."""
        frame = self.reporter.step // max(1, self.params.preview_every) % self.frames
        return finish_image(self.xs[frame], self.params, self.colour_references[frame])

    def _motion(self, dims: tuple[int, int]) -> Motion:
        """The content's motion between neighbouring frames at the final size."""
        return clip_motion(
            [f.resize(dims, Image.Resampling.LANCZOS) for f in self.clip.frames], self.clip.loop
        )

    def _next_level(self) -> None:
        self.level += 1
        self.level_steps = 0
        self.optimisers = []
        if self.done:
            self.objectives = []
            return
        self._level_started = time.perf_counter()
        dims = self.level_dims[self.level - 1]
        tile = self.plan.tile
        layers = (*self.params.style_layers, *self.params.content_layers)
        tiling = (
            TileSize(tile, tile_margin(layers)) if tile is not None and max(dims) > tile else None
        )
        # the style targets are computed once for all the frames
        cache: StyleCache = self.style_cache if self.style_cache is not None else {}
        objectives, content_ts, xs = [], [], []
        for i, frame in enumerate(self.clip.frames):
            content_t, style_ts = level_targets(
                frame, self.styles, self.params, dims, self.min_side
            )
            with self.policy.applied():
                objective = Objective(
                    self.model, self.params, content_t, style_ts, self.blend, cache, tiling
                )
            if i == 0 and self.style_cache is not None:
                self.style_cache_hits += objective.cache_hits
            if self.xs:
                # on the CPU, like the targets: no second full-size picture held on the device
                x = next_level_start(self.xs[i].detach().cpu(), self._content_ts[i], content_t)
            else:  # every frame from the same noise (for noise starts): they start steady
                generator = torch.Generator().manual_seed(self.seed)
                x = initial_image(content_t, style_ts, self.params, generator)
            objectives.append(objective)
            content_ts.append(content_t)
            xs.append(contiguous_leaf(x.to(self.device)))
        if objectives[0].tiles is not None:
            self.objective_tiles = len(objectives[0].tiles)
        self.objectives, self._content_ts, self.xs = objectives, content_ts, xs
        self.optimisers = [Optimiser(x, self.params, self.plan.history) for x in xs]


def next_level_start(
    coarse: torch.Tensor, coarse_content: torch.Tensor | None, content: torch.Tensor
) -> torch.Tensor:
    """Coarse-to-fine: the next level starts from the previous level's result enlarged, with the
    detail that the enlargement cannot have (the content less its own coarse version, enlarged)
    added back: the coarse level's painting, at the fine level's sharpness."""
    size = content.shape[-2:]

    def enlarged(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)

    x = enlarged(coarse)
    if coarse_content is None:
        return x
    return (x + content - enlarged(coarse_content)).clamp(0, 1)


def step_together(paintings: Sequence[Painting]) -> list[tuple[Painting, BaseException]]:
    """One step of each painting (all with the same `shape_key`), with one forward and backward
    pass. Returns the paintings that failed in their own step (cancelled, NaN), with the error;
    the others have moved on. An error of the shared pass (out of memory) is raised, with no
    painting changed, so that the caller can split the batch and try again."""
    if len(paintings) == 1:
        try:
            paintings[0].step_alone()
            return []
        except Exception as exc:
            if out_of_memory(exc):
                raise
            return [(paintings[0], exc)]
    first = paintings[0]
    pairs = [(p.objectives[0], p.x) for p in paintings]
    grads, all_terms = frame_gradients(first.model, first.policy, pairs, len(pairs))
    failed = []
    for painting, grad, terms in zip(paintings, grads, all_terms, strict=True):
        try:
            painting.apply([grad], terms)
        except Exception as exc:  # Cancelled, NonFiniteLoss: this painting only
            failed.append((painting, exc))
    return failed


def frame_gradients(
    model: VGG19Features,
    policy: DevicePolicy,
    pairs: Sequence[tuple[Objective, torch.Tensor]],
    chunk: int,
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """The gradient and terms of each (objective, pixels) pair, one picture of (1, 3, H, W)
    each: `chunk` pictures per VGG-19 forward and backward pass (all of one shape and layers), a
    tiled objective's alone, tile by tile."""
    grads: list[torch.Tensor] = []
    all_terms: list[dict[str, torch.Tensor]] = []
    chunk = max(1, chunk)
    with policy.applied():
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            if part[0][0].tiled or len(part) == 1:
                for objective, x in part:
                    grad, terms = objective.gradient(x)
                    grads.append(grad)
                    all_terms.append(terms)
                continue
            batch = torch.cat([x.detach() for _, x in part]).requires_grad_(True)
            feats = model(batch, part[0][0].names)
            total = None
            for i, (objective, _) in enumerate(part):
                mine = {n: f[i : i + 1] for n, f in feats.items()}
                loss, terms = objective.loss(mine, batch[i : i + 1])
                total = loss if total is None else total + loss
                all_terms.append(terms)
            assert total is not None
            (batch_grad,) = torch.autograd.grad(total, batch)
            grads.extend(batch_grad[i : i + 1] for i in range(len(part)))
    return grads, all_terms


def mean_terms(all_terms: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Each term averaged over the frames (a still's own terms, unchanged)."""
    if len(all_terms) == 1:
        return dict(all_terms[0])
    return {
        name: sum(t[name].detach().float() for t in all_terms) / len(all_terms)  # type: ignore[misc]
        for name in all_terms[0]
    }


def out_of_memory(exc: BaseException) -> bool:
    """Whether an error means the device (or the host) ran out of memory."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )
