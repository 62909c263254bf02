"""Autocomplete choices the commands offer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord import app_commands

from bot.presets import preset_key

if TYPE_CHECKING:
    from bot.app import StyleBot


async def preset_choices(bot: StyleBot, guild_id: int | None, current: str):
    """The server's presets whose name contains what the member typed, for autocomplete."""
    if guild_id is None:
        return []
    wanted = preset_key(current)
    return [
        app_commands.Choice(name=p.label(), value=p.name)
        for p in await bot.storage.presets.list(guild_id)
        if wanted in p.key
    ][:25]
