"""Errors members see: UserFacingError, the member-facing message of each known error, and the
private reply that carries it (the tree's handler is the `errors` extension's)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.cogs.ui.checks import ChannelNotAllowed, OnCooldown
from bot.jobs.refusals import Refusal
from bot.text import clip

log = logging.getLogger(__name__)


class UserFacingError(app_commands.AppCommandError):
    """An error whose message is meant for the member, shown as an ephemeral reply."""


async def reply_ephemeral(interaction: discord.Interaction, message: str) -> None:
    message = clip(message)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell a member: %s", message)


def refusal_for(error: app_commands.AppCommandError) -> Refusal:
    """The metrics' reason for a known error of message_for's."""
    if isinstance(error, OnCooldown | app_commands.CommandOnCooldown):
        return Refusal.COOLDOWN
    if isinstance(error, UserFacingError):
        return Refusal.BAD_INPUT
    return Refusal.CHECK


def message_for(error: app_commands.AppCommandError) -> str | None:
    """A member-facing message for a known error, None for an unknown one."""
    if isinstance(error, UserFacingError):
        return str(error)
    if isinstance(error, ChannelNotAllowed):
        return f"/stylize can be used here: {', '.join(f'<#{c}>' for c in error.channels)}."
    if isinstance(error, OnCooldown):
        return f"Slow down: you can use /stylize again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.MissingPermissions):
        names = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"You need the {names} permission to do this."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.CheckFailure):
        return "You are not allowed to use this command here."
    return None
