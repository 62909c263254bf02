"""Errors members see, and the one tree-level handler that turns errors into short replies."""

from __future__ import annotations

import logging
import uuid

import discord
from discord import app_commands

from bot.cogs.utils.checks import ChannelNotAllowed, OnCooldown, give_back_cooldown
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


async def on_tree_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    give_back_cooldown(interaction)  # whatever stopped the command, no job started
    message = message_for(error)
    if message is None:
        error_id = uuid.uuid4().hex[:8]
        command = interaction.command.qualified_name if interaction.command else "?"
        log.error("unhandled error in /%s (error id %s)", command, error_id, exc_info=error)
        message = (
            f"Something went wrong on our side (error id `{error_id}`). Please try again later."
        )
    await reply_ephemeral(interaction, message)
