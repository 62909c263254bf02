"""Server style presets: named style images that admins save and members use with
`/stylize preset:<name>`. The rules live here; storage.py keeps them (the `style_presets` table,
images in `blobs`); cogs/settings.py and cogs/stylize.py are the Discord side.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from bot.engine.params import COLOR_MODES, MAX_STRENGTH
from bot.guild_policy import Request

MAX_PRESETS = 25  # per server: also the most choices Discord's autocomplete shows
NAME_MAX = 32
KEY_MAX = 64  # the stored key (the name with its case folded) may be longer than the name
_NAME = re.compile(r"[\w][\w \-'.]*", re.UNICODE)


class PresetError(ValueError):
    """A preset cannot be saved or used; the message says why, for a person."""


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str  # as the admin wrote it
    strength: float | None = None  # None: the member's or the server's
    preserve_colors: str | None = None
    created_by: int | None = None
    created_at: float = 0.0

    def __post_init__(self) -> None:
        if self.strength is not None:  # a typed "-0" is 0 (it would read "strength -0")
            object.__setattr__(self, "strength", self.strength + 0.0)

    @property
    def key(self) -> str:
        return preset_key(self.name)

    def describe(self) -> str:
        parts = [f"**{self.name}**"]
        if self.strength is not None:
            parts.append(f"strength {self.strength:g}")
        if self.preserve_colors not in (None, "none"):
            parts.append(f"colours: {self.preserve_colors}")
        return " · ".join(parts)

    def label(self) -> str:
        """Plain text for Discord's autocomplete (at most 100 characters, no markdown)."""
        return self.describe().replace("**", "")[:100]

    def fill(self, request: Request) -> Request:
        """The member's request with the preset's values where the member gave none."""
        return replace(
            request,
            strength=request.strength if request.strength is not None else self.strength,
            preserve_colors=request.preserve_colors or self.preserve_colors,
        )


def preset_key(name: str) -> str:
    """Names compare without case and surrounding spaces."""
    return " ".join(name.split()).casefold()


def checked(preset: Preset) -> Preset:
    """The preset with its name tidied, or PresetError."""
    name = " ".join(preset.name.split())
    if not 1 <= len(name) <= NAME_MAX or not _NAME.fullmatch(name):
        raise PresetError(
            f"a preset name has 1 to {NAME_MAX} letters, digits, spaces, - _ ' or ., "
            "and starts with a letter or digit"
        )
    if len(preset_key(name)) > KEY_MAX:  # "ﬃ" is one letter, and three when case is folded
        raise PresetError("that name is too long once its letters are compared; shorten it")
    if preset.strength is not None and not (
        math.isfinite(preset.strength) and 0 <= preset.strength <= MAX_STRENGTH
    ):
        raise PresetError(f"a preset's strength is between 0 and {MAX_STRENGTH:g}")
    if preset.preserve_colors not in (None, *COLOR_MODES):
        raise PresetError(f"colours must be one of {', '.join(COLOR_MODES)}")
    return replace(preset, name=name)


def image_key(guild_id: int, name: str) -> str:
    """Where the preset's image lives in the blob store."""
    return f"preset:{guild_id}:{preset_key(name)}"
