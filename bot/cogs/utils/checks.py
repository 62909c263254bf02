"""The checks of the house, as app_commands checks; bot/cogs/errors.py words their failures."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar

import discord
from discord import app_commands

from bot.guild_policy import GuildSettings, channel_allowed

if TYPE_CHECKING:
    from bot.app import StyleBot

T = TypeVar("T")


class ChannelNotAllowed(app_commands.CheckFailure):
    def __init__(self, channels: tuple[int, ...]):
        super().__init__("not in an allowed channel")
        self.channels = channels


class OnCooldown(app_commands.CheckFailure):
    def __init__(self, retry_after: float):
        super().__init__("on cooldown")
        self.retry_after = retry_after


class Cooldowns:
    """When each member last started a job, per server (in memory)."""

    def __init__(self) -> None:
        self._last: dict[tuple[int | None, int], float] = {}

    def left(
        self, guild_id: int | None, user_id: int, seconds: float, now: float | None = None
    ) -> float:
        """Seconds until the member may start again; 0 or less: now."""
        last = self._last.get((guild_id, user_id))
        now = time.monotonic() if now is None else now
        return 0.0 if last is None else seconds - (now - last)

    def mark(self, guild_id: int | None, user_id: int, now: float | None = None) -> None:
        self._last[(guild_id, user_id)] = time.monotonic() if now is None else now

    def claim(self, interaction: discord.Interaction, seconds: float) -> None:
        """Take the member's cooldown for this interaction at once (raise OnCooldown if it is not
        over): on the event loop there is no await between the check and the mark, so of several
        commands sent together only one passes. `give_back` returns it if no job starts."""
        key = (interaction.guild_id, interaction.user.id)
        left = self.left(*key, seconds)
        if left > 0:
            raise OnCooldown(left)
        interaction.extras[_CLAIM] = (self, key, self._last.get(key))
        self.mark(*key)

    def restore(self, key: tuple[int | None, int], previous: float | None) -> None:
        """Put back what `claim` replaced."""
        if previous is None:
            self._last.pop(key, None)
        else:
            self._last[key] = previous


_CLAIM = "stylebot-cooldown-claim"


def give_back_cooldown(interaction: discord.Interaction) -> None:
    """The interaction's job was refused or failed to start: its cooldown claim is undone."""
    claim = interaction.extras.pop(_CLAIM, None)
    if claim is None:
        return
    cooldowns, key, previous = claim
    cooldowns.restore(key, previous)


def keep_cooldown(interaction: discord.Interaction) -> None:
    """The interaction's job started: its cooldown claim stands."""
    interaction.extras.pop(_CLAIM, None)


async def guild_settings(interaction: discord.Interaction[StyleBot]) -> GuildSettings:
    if interaction.guild_id is None:
        return GuildSettings()
    return await interaction.client.storage.settings.read(interaction.guild_id)


async def check_may_start_job(interaction: discord.Interaction[StyleBot]) -> bool:
    """The server's channel allow-list, then the member's cooldown, which this claims (raise
    ChannelNotAllowed, OnCooldown). A refusal after this gives the cooldown back."""
    settings = await guild_settings(interaction)
    if not channel_allowed(settings, interaction.channel_id):
        raise ChannelNotAllowed(settings.allowed_channels)
    interaction.client.cooldowns.claim(interaction, settings.cooldown_seconds)
    return True


may_start_job = app_commands.check(check_may_start_job)


def admin_only(cls: type[T]) -> type[T]:
    """For a GroupCog: Discord shows its commands to Manage Server only (a hint admins can change),
    and every one of them checks Manage Server on the server side too."""
    cls = app_commands.default_permissions(manage_guild=True)(cls)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    cls.interaction_check = interaction_check  # type: ignore[attr-defined]
    return cls
