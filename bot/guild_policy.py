"""A server's policy in one room: its settings, their validation, how a member's options and the
server's defaults and caps become StyleParams, and how the settings read to a person.

Pure data and rules: no Discord, no database, no torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.engine.params import (
    DEFAULT_STYLE_LAYERS,
    MAX_SIZE,
    MAX_STEPS,
    MAX_STRENGTH,
    MAX_TYPED_SEED,
    ColorMode,
    InvalidParams,
    Optimizer,
    StyleParams,
    describe_schedule,
    draw_seed,
)
from bot.text import join_within

DEFAULTS = StyleParams()  # the engine owns every default a server does not change

# What a member may ask for in /stylize, where it is narrower than the engine's bounds
# (bot/engine/params.py): the command's declared ranges, checked here (check_request) because
# Discord clients can send anything and discord.py does not re-check a Range.
MEMBER_MIN_SIZE = 64
MIN_STYLE_SCALE, MAX_STYLE_SCALE = 0.25, 2.0
MAX_COOLDOWN = 86400  # seconds between two /stylize of one member, at most


class SettingsError(ValueError):
    """A server setting is out of range; the message says what is allowed."""


@dataclass(frozen=True, kw_only=True)
class GuildSettings:
    """What admins can set for their server."""

    strength: float = DEFAULTS.strength
    content_weight: float | None = None  # alpha; with style_weight replaces strength
    style_weight: float | None = None  # beta
    style_layer_weights: tuple[float, ...] | None = None  # lambda per default style layer
    steps: int = DEFAULTS.steps  # 0: the size's schedule (512 px: 80 after a coarser level of 80)
    size: int = DEFAULTS.size
    optimizer: Optimizer = DEFAULTS.optimizer
    preserve_colors: ColorMode = DEFAULTS.preserve_colors
    max_size: int = 1024  # the largest size members may ask for
    max_steps: int = 500  # the most steps members may ask for
    cooldown_seconds: int = 30  # between two /stylize of one member
    allowed_channels: tuple[int, ...] = field(default=())  # empty: every channel
    # moving pictures (GIFs and clips): at most clip_frames frames (a higher frame rate is
    # lowered), the first clip_seconds (a longer clip is cut), at most clip_size px
    clip_frames: int = DEFAULTS.clip_frames
    clip_seconds: float = DEFAULTS.clip_seconds
    clip_size: int = DEFAULTS.clip_size

    def replace(self, **changes: Any) -> GuildSettings:
        # + 0.0 turns a typed "-0" into 0 (it would read "strength -0" everywhere)
        changes = {k: v + 0.0 if isinstance(v, float) else v for k, v in changes.items()}
        return dataclasses.replace(self, **changes).validate()

    def validate(self) -> GuildSettings:
        """The server's own rules (caps, cooldown, the members' narrower sizes); the defaults it
        gives every job are checked once, by the engine's StyleParams.validate."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise SettingsError(message)

        need(
            MEMBER_MIN_SIZE <= self.max_size <= MAX_SIZE,
            f"the size cap must be between {MEMBER_MIN_SIZE} and {MAX_SIZE}",
        )
        need(1 <= self.max_steps <= MAX_STEPS, f"the steps cap must be between 1 and {MAX_STEPS}")
        need(
            MEMBER_MIN_SIZE <= self.size <= self.max_size,
            f"size must be between {MEMBER_MIN_SIZE} and the size cap ({self.max_size})",
        )
        need(
            0 <= self.steps <= self.max_steps,
            f"steps must be between 1 and the steps cap ({self.max_steps}), or 0 for the "
            "size's schedule",
        )
        need(
            MEMBER_MIN_SIZE <= self.clip_size <= MAX_SIZE,
            f"the clip size must be between {MEMBER_MIN_SIZE} and {MAX_SIZE}",
        )
        need(
            self.style_layer_weights is None
            or len(self.style_layer_weights) == len(DEFAULT_STYLE_LAYERS),
            f"give {len(DEFAULT_STYLE_LAYERS)} layer weights, one for each of "
            f"{', '.join(DEFAULT_STYLE_LAYERS)}",
        )
        need(
            0 <= self.cooldown_seconds <= MAX_COOLDOWN,
            f"cooldown must be between 0 and {MAX_COOLDOWN} seconds",
        )
        try:
            self.job_defaults().validate()
        except InvalidParams as exc:
            raise SettingsError(str(exc)) from None
        return self

    def job_defaults(self) -> StyleParams:
        """The parameters this server gives a job that asks for nothing."""
        return StyleParams(
            size=self.size,
            steps=self.steps,
            strength=self.strength,
            content_weight=self.content_weight,
            style_weight=self.style_weight,
            style_layer_weights=self.style_layer_weights,
            optimizer=self.optimizer,  # type: ignore[arg-type]
            preserve_colors=self.preserve_colors,  # type: ignore[arg-type]
            clip_frames=self.clip_frames,
            clip_seconds=self.clip_seconds,
            clip_size=self.clip_size,
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GuildSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        data: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in json.loads(text).items()
            if k in known
        }
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class Request:
    """What a member asked for; None: the server's default."""

    strength: float | None = None
    size: int | None = None
    steps: int | None = None
    preserve_colors: str | None = None
    seed: int | None = None
    optimizer: str | None = None
    style_scale: float | None = None
    n_styles: int = 1


@dataclass(frozen=True)
class Summary:
    """What the caption says about the parameters used."""

    text: str  # e.g. "strength 1 · 512 px · 300 steps"
    notes: tuple[str, ...] = ()  # e.g. "size capped at 1024 px by this server"


def check_request(request: Request) -> None:
    """InvalidParams, worded for a member, where a request leaves the narrower ranges that
    /stylize declares (discord.py does not re-check a Range, and a client can send anything);
    every other rule is the engine's (StyleParams.validate, in `params_for`)."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise InvalidParams(message)

    r = request
    need(
        r.size is None or MEMBER_MIN_SIZE <= r.size <= MAX_SIZE,
        f"size must be between {MEMBER_MIN_SIZE} and {MAX_SIZE}",
    )
    need(r.steps is None or 1 <= r.steps <= MAX_STEPS, f"steps must be between 1 and {MAX_STEPS}")
    need(
        r.seed is None or 0 <= r.seed <= MAX_TYPED_SEED,
        f"the seed must be between 0 and {MAX_TYPED_SEED}",
    )
    low, high = MIN_STYLE_SCALE, MAX_STYLE_SCALE
    need(
        r.style_scale is None or (math.isfinite(r.style_scale) and low <= r.style_scale <= high),
        f"style scale must be between {low:g} and {high:g}",
    )


def params_for(request: Request, settings: GuildSettings) -> tuple[StyleParams, Summary]:
    """The server's defaults, overridden by what the member asked for, clamped by the server's
    caps. Raises InvalidParams for a request outside the declared ranges or that cannot work."""
    check_request(request)
    notes = []
    wanted_size = request.size if request.size is not None else settings.size
    wanted_steps = request.steps if request.steps is not None else settings.steps
    if wanted_size > settings.max_size:
        notes.append(f"size capped at {settings.max_size} px by this server")
    raw = request.strength is None and settings.content_weight is not None
    params = StyleParams(
        size=min(wanted_size, settings.max_size),
        steps=wanted_steps,  # 0: the size's schedule (StyleParams.final_steps)
        # + 0.0: a typed "-0" is 0 (it would read "strength -0")
        strength=(request.strength if request.strength is not None else settings.strength) + 0.0,
        content_weight=settings.content_weight if raw else None,
        style_weight=settings.style_weight if raw else None,
        style_layer_weights=settings.style_layer_weights,
        optimizer=request.optimizer or settings.optimizer,  # type: ignore[arg-type]
        preserve_colors=request.preserve_colors or settings.preserve_colors,  # type: ignore[arg-type]
        seed=request.seed if request.seed is not None else draw_seed(),  # settled here
        style_scale=request.style_scale
        if request.style_scale is not None
        else DEFAULTS.style_scale,
        clip_frames=settings.clip_frames,
        clip_seconds=settings.clip_seconds,
        clip_size=min(settings.clip_size, settings.max_size),  # the size cap holds for clips too
    )
    params = _within_steps_cap(params, settings, notes).validate()
    return params, summarize(params, request.n_styles, notes)


def summarize(
    params: StyleParams, n_styles: int, notes: list[str] | tuple[str, ...] = ()
) -> Summary:
    """The caption's words for the parameters a job runs with."""
    weights = (
        f"α {params.content_weight:g} β {params.style_weight:g}"
        if params.raw_weights
        else f"strength {params.strength:g}"
    )
    text = f"{weights} · {params.size} px · {describe_schedule(params)}"
    if params.preserve_colors != "none":
        text += f" · colours: {params.preserve_colors}"
    if n_styles > 1:
        text += f" · {n_styles} styles"
    return Summary(text, tuple(notes))


class ResultAction(StrEnum):
    """The buttons under a result: a new job from the same images, changed so, or delete."""

    seed = "seed"
    more = "more"
    less = "less"
    colours = "colours"
    larger = "larger"
    delete = "delete"


AGAIN_ACTIONS = tuple(a for a in ResultAction if a is not ResultAction.delete)
# the presses that bring a result closer to the uploaded content: less style, the content's own
# colours, more pixels. Pressed again and again by anyone, they would give back a near-copy of a
# photo its member never showed, so only that member may press them.
REVEALING_ACTIONS = frozenset({ResultAction.less, ResultAction.colours, ResultAction.larger})


def may_reveal(action: str, presser_id: int, content_owner_id: int) -> bool:
    """Whether `presser_id` may press `action` on a result of `content_owner_id`'s upload."""
    return action not in REVEALING_ACTIONS or presser_id == content_owner_id


class NothingToChange(ValueError):
    """A result button whose change cannot apply (already at the largest size, ...)."""


def params_again(
    params: StyleParams, action: str, settings: GuildSettings, n_styles: int
) -> tuple[StyleParams, Summary]:
    """The parameters of a result button's new job: a new seed, twice or half the style, the
    content's colours, or twice the size; clamped by this server's caps, which say so."""
    if action == "seed":  # the one button that draws a new seed; the others keep the picture's
        changed = params.replace(seed=draw_seed())
    elif action in ("more", "less"):
        factor = 2.0 if action == "more" else 0.5
        if params.raw_weights:
            changed = params.replace(style_weight=(params.style_weight or 0.0) * factor)
        else:
            changed = params.replace(strength=min(MAX_STRENGTH, params.strength * factor))
    elif action == "colours":
        if params.preserve_colors == "luminance":
            raise NothingToChange("this picture already keeps the content's colours")
        changed = params.replace(preserve_colors="luminance")
    elif action == "larger":
        if params.size >= settings.max_size:
            raise NothingToChange(
                f"this picture is already at this server's largest size ({settings.max_size} px)"
            )
        changed = params.replace(size=min(params.size * 2, settings.max_size, MAX_SIZE))
    else:
        raise ValueError(f"unknown action {action!r}")
    notes = []
    if changed.size > settings.max_size:
        notes.append(f"size capped at {settings.max_size} px by this server")
        changed = changed.replace(size=settings.max_size)
    changed = _within_steps_cap(changed, settings, notes).validate()
    return changed, summarize(changed, n_styles, notes)


def _within_steps_cap(
    params: StyleParams, settings: GuildSettings, notes: list[str]
) -> StyleParams:
    """At most the server's steps cap at the final size (the size's own schedule included: 300
    at 1024 px), saying so; a preview every tenth of the final steps."""
    if params.final_steps > settings.max_steps:
        notes.append(f"steps capped at {settings.max_steps} by this server")
        params = params.replace(steps=settings.max_steps)
    return params.with_previews()


def channel_allowed(settings: GuildSettings, channel_id: int | None) -> bool:
    return not settings.allowed_channels or channel_id in settings.allowed_channels


def describe(settings: GuildSettings) -> str:
    """The settings as a person reads them (Discord markdown)."""
    weights = (
        f"α (content) {settings.content_weight:g}, β (style) {settings.style_weight:g}"
        if settings.content_weight is not None
        else f"strength {settings.strength:g}"
    )
    layers = (
        "equal"
        if settings.style_layer_weights is None
        else ", ".join(
            f"{n} {w:g}"
            for n, w in zip(DEFAULT_STYLE_LAYERS, settings.style_layer_weights, strict=True)
        )
    )
    # at most about ten mentions, the rest counted: the text fits a message however many there are
    channels = join_within([f"<#{c}>" for c in settings.allowed_channels], 240) or "every channel"
    return "\n".join(
        [
            f"**Weights:** {weights}",
            f"**Style layer weights:** {layers}",
            f"**Size:** {settings.size} px (members may ask up to {settings.max_size})",
            f"**Steps:** {settings.steps or 'the size’s schedule'} (members may ask up to {settings.max_steps})",
            f"**Optimizer:** {settings.optimizer} · **Colour preservation:** {settings.preserve_colors}",
            f"**Cooldown:** {settings.cooldown_seconds} s per member · **Channels:** {channels}",
            f"**Moving pictures:** up to {settings.clip_frames} frames, the first {settings.clip_seconds:g} s, "
            f"at most {min(settings.clip_size, settings.max_size)} px",
        ]
    )
