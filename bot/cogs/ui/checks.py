"""The checks of the house (a job request's channel and cooldown, admins only); bot/cogs/errors.py
words their failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import discord
from discord import app_commands

from bot.guild_policy import GuildSettings, channel_allowed
from bot.jobs.cooldown import Claim, CooldownActive

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


async def guild_settings(interaction: discord.Interaction[StyleBot]) -> GuildSettings:
    if interaction.guild_id is None:
        return GuildSettings()
    return await interaction.client.storage.settings.read(interaction.guild_id)


@asynccontextmanager
async def job_request(
    interaction: discord.Interaction[StyleBot],
) -> AsyncIterator[tuple[GuildSettings, Claim]]:
    """A member asks for a job: the server's settings (read once), its channel allow-list, then
    the member's cooldown, which this claims (raise ChannelNotAllowed, OnCooldown). The claim
    goes to the launcher, which keeps it when the job starts; leaving the block gives back a
    claim that was not kept (a refusal, an error)."""
    settings = await guild_settings(interaction)
    if not channel_allowed(settings, interaction.channel_id):
        raise ChannelNotAllowed(settings.allowed_channels)
    try:
        claim = interaction.client.cooldowns.claim(
            interaction.guild_id, interaction.user.id, settings.cooldown_seconds
        )
    except CooldownActive as exc:
        raise OnCooldown(exc.retry_after) from None
    try:
        yield settings, claim
    finally:
        claim.give_back()  # nothing if the launcher kept it


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
