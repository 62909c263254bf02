"""One job's optimisation as an object advanced one step at a time, alone or in a batch.

`Painting` holds a job's pyramid levels, the current level's objective, the pixels and the
optimiser state (its own L-BFGS history or Adam moments: nothing is
shared between jobs). `step_alone()` runs one step by itself; `step_together()` runs one step of
several paintings of the same shape with one VGG-19 forward and backward pass over all of them,
then gives each its own gradient. VGG-19 treats the images of a batch independently, so a
painting's gradient does not depend on its neighbours: batched or alone, it takes the same steps
(up to the rounding of the convolution algorithms chosen for the batch size).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from bot.engine import imaging
from bot.engine.devices import DevicePolicy
from bot.engine.lbfgs import LBFGS
from bot.engine.memory import LBFGS_HISTORY, MemoryPlan, tile_margin
from bot.engine.objective import Objective, StyleCache
from bot.engine.params import InvalidParams, StyleParams, min_input_side
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

    `plan` (bot/engine/memory.py) sets the L-BFGS history and, for pictures beyond memory, the
    tile size: a level larger than the tile is optimised tile by tile (bot/engine/tiling.py).
    """

    def __init__(
        self,
        model: VGG19Features,
        content: Image.Image,
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
        self.params, self.policy = params, policy
        self.model = policy.prepare_model(model)
        self.device = next(model.parameters()).device
        self.content, self.styles = content, list(styles)
        self.blend = params.blend_weights(len(styles))
        self.style_cache = style_cache
        self.plan = plan or MemoryPlan(0, LBFGS_HISTORY)
        self.seed = params.seed if params.seed is not None else random.randrange(2**31)
        self.generator = torch.Generator().manual_seed(self.seed)
        out_w, out_h = imaging.fit_size(*content.size, params.size)
        self.min_side = min_input_side((*params.style_layers, *params.content_layers))
        if min(out_w, out_h) < self.min_side:
            raise InvalidParams(
                f"at size {params.size} the content image becomes {out_w}x{out_h}, too thin for the chosen layers: "
                f"they need at least {self.min_side} pixels on the short side (use a larger size)"
            )
        self.level_dims = [  # coarse levels too small for the layers are left out
            d
            for d in (
                imaging.fit_size(out_w, out_h, s) for s in pyramid_sizes(params.size, params.levels)
            )
            if min(d) >= self.min_side
        ]
        self.colour_reference = prepare(content, (out_w, out_h))
        self.level_step_counts = params.level_steps(len(self.level_dims))
        self.reporter = Reporter(
            params,
            self.level_step_counts,
            [w * h for w, h in self.level_dims],
            policy,
            on_progress,
            should_cancel,
            self.colour_reference,
        )
        self.objective_tiles = 0  # tiles of the last level that was tiled (for benchmarks)
        self.style_cache_hits = 0  # style targets found in `style_cache`, over all levels
        self.level = 0  # 1-based once started
        self.level_steps = 0
        self.work_done = 0.0  # full-size step equivalents of the steps taken so far (see `work`)
        self.converged_at: int | None = None  # steps of the final level, when it stopped early
        self.level_seconds: list[float] = []
        self._level_started = 0.0
        self.x: torch.Tensor | None = None
        self._content_t: torch.Tensor | None = None  # the current level's content target (CPU)
        self.objective: Objective | None = None
        self._optimiser: Optimiser | None = None
        self._next_level()

    @property
    def work(self) -> float:
        """The run's planned work in full-size step equivalents: a step at a level with a quarter
        of the final pixels counts a quarter (a level that converges takes less: `work_done`)."""
        width, height = self.level_dims[-1]
        return sum(
            n * w * h / (width * height)
            for n, (w, h) in zip(self.level_step_counts, self.level_dims, strict=True)
        )

    @property
    def step_work(self) -> float:
        """The work of one step at the current level, in full-size step equivalents."""
        width, height = self.level_dims[-1]
        w, h = self.level_dims[min(self.level, len(self.level_dims)) - 1]
        return w * h / (width * height)

    def picture(self) -> Image.Image:
        """The picture as it stands, at the final size (a coarse level's is enlarged)."""
        assert self.x is not None
        image = finish_image(self.x, self.params, self.colour_reference)
        final = self.level_dims[-1]
        return image if image.size == final else image.resize(final, Image.Resampling.BICUBIC)

    # --- what a batcher needs -------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.level > len(self.level_dims)

    @property
    def shape_key(self) -> tuple:
        """Paintings with equal keys can share a forward pass (a tiled one shares with none)."""
        assert self.objective is not None and self.x is not None
        if self.objective.tiled:
            return ("tiled", id(self))
        return (tuple(self.x.shape), self.objective.names, self.model.pooling, id(self.model))

    def apply(self, grad: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """One optimiser step with this painting's gradient; then progress, cancel and NaN checks
        (Cancelled and NonFiniteLoss come from here), and the next level when this one is over."""
        assert self.x is not None and self._optimiser is not None
        self._optimiser.step(self.x, grad)
        self.level_steps += 1
        self.work_done += self.step_work
        converged = self.reporter.after_step(self.x, terms, self.level, self.level_steps)
        if converged or self.level_steps == self.level_step_counts[self.level - 1]:
            if converged and self.level == len(self.level_dims):
                self.converged_at = self.level_steps
            self.level_seconds.append(time.perf_counter() - self._level_started)
            self._next_level()

    def step_alone(self) -> None:
        assert self.x is not None and self.objective is not None
        with self.policy.applied():
            grad, terms = self.objective.gradient(self.x)
        self.apply(grad, terms)

    def run(self, after_step: Callable[[], None] | None = None) -> Result:
        """Step alone to the end (the loop of every run that is not batched); `after_step` is
        called after each step (benchmarks time the steps with it)."""
        while not self.done:
            self.step_alone()
            if after_step is not None:
                after_step()
        return self.result()

    def result(self) -> Result:
        assert self.done and self.x is not None
        if not bool(torch.isfinite(self.x).all()):
            raise NonFiniteLoss(
                "the picture became NaN or infinite: lower the strength, the weights or the learning rate"
            )
        return Result(
            image=finish_image(self.x, self.params, self.colour_reference),
            seed=self.seed,
            steps=self.reporter.step,
            elapsed=time.perf_counter() - self.reporter.started,
            losses=self.reporter.losses,
            device=str(self.device),
            precision=self.policy.precision,
            level_seconds=self.level_seconds,
            converged_at=self.converged_at,
        )

    # --- inside ---------------------------------------------------------------------------------

    def _next_level(self) -> None:
        self.level += 1
        self.level_steps = 0
        self._optimiser = None
        if self.done:
            self.objective = None
            return
        self._level_started = time.perf_counter()
        dims = self.level_dims[self.level - 1]
        content_t, style_ts = level_targets(
            self.content, self.styles, self.params, dims, self.min_side
        )
        tile = self.plan.tile
        layers = (*self.params.style_layers, *self.params.content_layers)
        tiling = (
            TileSize(tile, tile_margin(layers)) if tile is not None and max(dims) > tile else None
        )
        with self.policy.applied():
            self.objective = Objective(
                self.model, self.params, content_t, style_ts, self.blend, self.style_cache, tiling
            )
        if self.objective.tiles is not None:
            self.objective_tiles = len(self.objective.tiles)
        self.style_cache_hits += self.objective.cache_hits
        if self.x is None:
            x = initial_image(content_t, style_ts, self.params, self.generator)
        else:
            # on the CPU, like the targets: no second full-size picture held on the device
            x = next_level_start(self.x.detach().cpu(), self._content_t, content_t)
        self._content_t = content_t
        self.x = contiguous_leaf(x.to(self.device))
        self._optimiser = Optimiser(self.x, self.params, self.plan.history)


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
    grads, all_terms = batch_gradient(paintings)
    failed = []
    for i, painting in enumerate(paintings):
        try:
            painting.apply(grads[i : i + 1], all_terms[i])
        except Exception as exc:  # Cancelled, NonFiniteLoss: this painting only
            failed.append((painting, exc))
    return failed


def batch_gradient(
    paintings: Sequence[Painting],
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Each painting's gradient and terms at its current picture, from one forward and backward
    pass over the batch (all with the same `shape_key`): row i is painting i's."""
    first = paintings[0]
    assert first.objective is not None
    names = first.objective.names
    with first.policy.applied():
        batch = torch.cat([p.x for p in paintings]).detach().requires_grad_(True)  # type: ignore[misc]
        feats = first.model(batch, names)
        total = None
        all_terms = []
        for i, painting in enumerate(paintings):
            assert painting.objective is not None
            mine = {n: f[i : i + 1] for n, f in feats.items()}
            loss, terms = painting.objective.loss(mine, batch[i : i + 1])
            total = loss if total is None else total + loss
            all_terms.append(terms)
        assert total is not None
        (grads,) = torch.autograd.grad(total, batch)
    return grads, all_terms


def out_of_memory(exc: BaseException) -> bool:
    """Whether an error means the device (or the host) ran out of memory."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )
