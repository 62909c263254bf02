"""The Gatys et al. optimisation loop: targets once, then L-BFGS or Adam on the pixels."""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image

from bot.engine import images
from bot.engine.losses import content_cost, gram, gram_norm_cost, layer_style_cost, total_variation
from bot.engine.params import STRENGTH_SCALE, InvalidParams, StyleParams
from bot.engine.vgg import LAYER_NAMES, VGG19Features

PRECISIONS = ("auto", "fp32", "tf32", "bf16")


class Cancelled(Exception):
    """The run was cancelled through `should_cancel`."""


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
    level_seconds: list[float] = field(default_factory=list)


ProgressCallback = Callable[[Progress], None]
StyleCache = MutableMapping[str, dict[str, torch.Tensor]]


def _layer_shapes(height: int, width: int) -> dict[str, tuple[int, int]]:
    """(n_H, n_W) of every VGG-19 layer for an input of this size: each pool halves it."""
    shapes = {}
    for name in LAYER_NAMES:
        if name.startswith("pool"):
            height, width = height // 2, width // 2
        shapes[name] = (height, width)
    return shapes


def min_input_side(layers: Sequence[str]) -> int:
    """The shortest input side for which every layer in `layers` has at least one position."""
    deepest = max(LAYER_NAMES.index(n) for n in layers)
    return 2 ** sum(1 for n in LAYER_NAMES[:deepest] if n.startswith("pool"))


def _style_dims(size: tuple[int, int], longest: int, min_side: int) -> tuple[int, int]:
    width, height = images.fit_size(*size, longest)
    if min(width, height) < min_side:  # a thin style image is enlarged until the layers fit
        scale = min_side / min(width, height)
        width, height = max(min_side, round(width * scale)), max(min_side, round(height * scale))
    return width, height


def pyramid_sizes(max_side: int, levels: int) -> list[int]:
    """Longest sides from coarsest to finest; the last is `max_side`."""
    return [max(16, max_side >> (levels - 1 - i)) for i in range(levels)]


@contextlib.contextmanager
def _precision(device: torch.device, precision: str):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        yield
        return
    use_tf32 = precision in ("auto", "tf32", "bf16")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = use_tf32
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class Objective:
    """J(x) for one pyramid level, with its targets computed once."""

    def __init__(self, model, params: StyleParams, content: torch.Tensor, styles: Sequence[torch.Tensor],
                 blend: Sequence[float], style_cache: StyleCache | None):
        self.model, self.params = model, params
        self.style_layers = params.style_layers
        self.content_layers = params.content_layers
        self.names = tuple(dict.fromkeys((*self.style_layers, *self.content_layers)))
        shapes = _layer_shapes(*content.shape[-2:])
        with torch.no_grad():
            feats = model(content, self.names)
            self.content_targets = {n: feats[n].detach() for n in self.content_layers}
            per_position = [self._style_grams(s, style_cache) for s in styles]
            # Departs from the seed only when the style image's size differs from the generated
            # image's: Gram entries are sums over positions, so the style's Gram is rescaled to
            # the generated image's number of positions (a no-op for equal sizes).
            self.style_targets = {
                n: sum(w * g[n] for w, g in zip(blend, per_position, strict=True)) * (shapes[n][0] * shapes[n][1])
                for n in self.style_layers
            }
        lambdas = dict(zip(self.style_layers, params.layer_weights, strict=True))
        if params.raw_weights:  # the seed's J = alpha J_content + beta J_style, unnormalised
            alpha, beta = float(params.content_weight or 0.0), float(params.style_weight or 0.0)
            self.content_scale = {n: alpha for n in self.content_layers}
            self.style_scale = {n: beta * lambdas[n] for n in self.style_layers}
        else:
            # Strength mode (departs from the seed): each term is divided by a scale of its own,
            # so the balance depends neither on the scale of the VGG-19 weights nor on how much
            # energy the style image has: a content layer by its cost for an all-zero image, a
            # style layer by its cost for the content image (the gap to close), at least 5 % of
            # its cost for an all-zero image (for a style that is the content itself).
            beta = params.strength * STRENGTH_SCALE
            share = 1.0 / len(self.content_layers)
            self.content_scale = {
                n: share / max(float(content_cost(t, torch.zeros_like(t))), 1e-30)
                for n, t in self.content_targets.items()
            }
            self.style_scale = {}
            for n in self.style_layers:
                gap = float(layer_style_cost(self.style_targets[n], feats[n]))
                floor = 0.05 * float(gram_norm_cost(self.style_targets[n], *shapes[n]))
                self.style_scale[n] = beta * lambdas[n] / max(gap, floor, 1e-30)

    def _style_grams(self, style: torch.Tensor, cache: StyleCache | None) -> dict[str, torch.Tensor]:
        """Gram matrices of one style image divided by its number of positions (n_H n_W)."""
        key = None
        if cache is not None:
            digest = hashlib.sha1(style.detach().cpu().numpy().tobytes()).hexdigest()
            pooling = self.model.layers[4].__class__.__name__
            key = f"{digest}:{tuple(style.shape)}:{','.join(self.style_layers)}:{pooling}:{style.device}"
            if key in cache:
                return cache[key]
        feats = self.model(style, self.style_layers)
        grams = {n: (gram(f) / (f.shape[-2] * f.shape[-1])).detach() for n, f in feats.items()}
        if key is not None:
            cache[key] = grams
        return grams

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = self.model(x, self.names)
        content = sum(self.content_scale[n] * content_cost(self.content_targets[n], feats[n]) for n in self.content_layers)
        style = sum(self.style_scale[n] * layer_style_cost(self.style_targets[n], feats[n]) for n in self.style_layers)
        total = content + style
        terms = {"content": content, "style": style}
        if self.params.tv_weight > 0:
            tv = self.params.tv_weight * total_variation(x)
            total = total + tv
            terms["tv"] = tv
        terms["total"] = total
        return total, terms


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
) -> Result:
    """Paint `content` in the style of `styles`. Raises Cancelled if `should_cancel()` turns true."""
    params.validate()
    if not styles:
        raise ValueError("at least one style image is needed")
    blend = params.blend_weights(len(styles))
    device = next(model.parameters()).device
    seed = params.seed if params.seed is not None else random.randrange(2**31)
    generator = torch.Generator().manual_seed(seed)
    out_w, out_h = images.fit_size(*content.size, params.size)
    min_side = min_input_side((*params.style_layers, *params.content_layers))
    if min(out_w, out_h) < min_side:
        raise InvalidParams(
            f"at size {params.size} the content image becomes {out_w}x{out_h}, too thin for the chosen layers: "
            f"they need at least {min_side} pixels on the short side (use a larger size)"
        )
    # coarse levels too small for the layers are left out
    level_dims = [d for d in (images.fit_size(out_w, out_h, s) for s in pyramid_sizes(params.size, params.pyramid_levels))
                  if min(d) >= min_side]
    sizes = [max(d) for d in level_dims]
    work = [params.steps * w * h for w, h in level_dims]
    total_steps = params.steps * len(sizes)
    started = time.perf_counter()
    step = 0
    level_seconds: list[float] = []
    last_terms: dict[str, float] = {}
    colour_reference = images.to_tensor(content.resize((out_w, out_h), Image.Resampling.LANCZOS))

    def prepare(image: Image.Image, dims: tuple[int, int]) -> torch.Tensor:
        return images.to_tensor(image.resize(dims, Image.Resampling.LANCZOS))

    def to_device(t: torch.Tensor) -> torch.Tensor:
        t = t.to(device)
        return t.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else t

    x: torch.Tensor | None = None
    with _precision(device, precision):
        for level, (dims, level_work) in enumerate(zip(level_dims, work, strict=True), start=1):
            level_started = time.perf_counter()
            content_t = prepare(content, dims)
            style_side = max(16, round(max(dims) * params.style_scale))
            style_ts = [prepare(s, _style_dims(s.size, style_side, min_side)) for s in styles]
            if params.preserve_colors == "luminance":
                style_ts = [images.match_luminance(s, content_t) for s in style_ts]
                content_t = images.luminance(content_t)
            elif params.preserve_colors == "match":
                style_ts = [images.match_colors(s, content_t) for s in style_ts]
            content_t = to_device(content_t)
            objective = Objective(model, params, content_t, [to_device(s) for s in style_ts], blend, style_cache)

            if x is None:
                x = _initial_image(content_t, params, generator)
            else:  # coarse-to-fine: start from the previous level's result, upsampled
                x = F.interpolate(x.detach(), size=(dims[1], dims[0]), mode="bilinear", align_corners=False)
            x = to_device(x.detach().clone(memory_format=torch.contiguous_format)).requires_grad_(True)
            done_before = sum(work[: level - 1])

            def report(terms: dict[str, torch.Tensor], x=x, level=level, done_before=done_before, level_work=level_work) -> None:
                nonlocal step, last_terms
                step += 1
                last_terms = {k: float(v.detach()) for k, v in terms.items()}
                if on_progress is not None:
                    elapsed = time.perf_counter() - started
                    done = done_before + level_work * (step - params.steps * (level - 1)) / params.steps
                    eta = elapsed / done * (sum(work) - done) if done > 0 else None
                    preview = None
                    if params.preview_every and (step % params.preview_every == 0 or step == total_steps):
                        preview = _finish(x, params, colour_reference)
                    on_progress(Progress(step, total_steps, level, len(sizes), last_terms, elapsed, eta, preview))
                if should_cancel is not None and should_cancel():
                    raise Cancelled()

            _optimise(x, objective, params, report)
            level_seconds.append(time.perf_counter() - level_started)

    assert x is not None
    return Result(
        image=_finish(x, params, colour_reference),
        seed=seed,
        steps=step,
        elapsed=time.perf_counter() - started,
        losses=last_terms,
        device=str(device),
        level_seconds=level_seconds,
    )


def _initial_image(content: torch.Tensor, params: StyleParams, generator: torch.Generator) -> torch.Tensor:
    if params.init == "content":
        return content.clone()
    noise = torch.rand(content.shape, generator=generator).to(content)
    if params.init == "noise":
        return noise
    # "content+noise", as in the seed: a noisy copy of the content image
    return params.noise_ratio * noise + (1.0 - params.noise_ratio) * content


def _optimise(x: torch.Tensor, objective: Objective, params: StyleParams,
              report: Callable[[dict[str, torch.Tensor]], None]) -> None:
    if params.optimizer == "lbfgs":
        # One closure evaluation per step; the tolerances are off so a run does all its steps.
        optimizer = torch.optim.LBFGS(
            [x], lr=params.lr, max_iter=params.steps, max_eval=params.steps + 1,
            tolerance_grad=-1, tolerance_change=-1, history_size=100,
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss, terms = objective(x)
            loss.backward()
            report(terms)
            return loss

        optimizer.step(closure)
        return
    optimizer = torch.optim.Adam([x], lr=params.lr)
    for _ in range(params.steps):
        optimizer.zero_grad(set_to_none=True)
        loss, terms = objective(x)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        report(terms)


def _finish(x: torch.Tensor, params: StyleParams, colour_reference: torch.Tensor) -> Image.Image:
    result = x.detach().float().cpu().clamp(0, 1)
    if params.preserve_colors == "luminance":
        if colour_reference.shape[-2:] != result.shape[-2:]:  # a preview at a coarse pyramid level
            colour_reference = F.interpolate(colour_reference, size=result.shape[-2:], mode="bilinear", align_corners=False)
        result = images.combine_luminance(result, colour_reference)
    return images.to_image(result)
