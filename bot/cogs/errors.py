"""The extension that turns errors of application commands into short private replies: it
installs the tree's error handler when it loads."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.cogs.ui.failures import message_for, refusal_for, reply_ephemeral

if TYPE_CHECKING:
    from bot.app import StyleBot

log = logging.getLogger(__name__)
SETTINGS_GROUP = "stylize-settings"  # an admin's command: its errors are no refused jobs


async def on_tree_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    message = message_for(error)
    command = interaction.command.qualified_name if interaction.command else "?"
    if message is not None:
        if not command.startswith(SETTINGS_GROUP):  # a member's job that did not start
            interaction.client.metrics.refused(refusal_for(error))  # type: ignore[attr-defined]
    else:
        error_id = uuid.uuid4().hex[:8]
        log.error("unhandled error in /%s (error id %s)", command, error_id, exc_info=error)
        message = (
            f"Something went wrong on our side (error id `{error_id}`). Please try again later."
        )
    await reply_ephemeral(interaction, message)


async def setup(bot: StyleBot) -> None:
    bot.tree.on_error = on_tree_error
