"""The extension that turns errors of application commands into short private replies: it
installs the tree's error handler when it loads."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.cogs.utils.checks import give_back_cooldown
from bot.cogs.utils.failures import message_for, reply_ephemeral

if TYPE_CHECKING:
    from bot.app import StyleBot

log = logging.getLogger(__name__)


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


async def setup(bot: StyleBot) -> None:
    bot.tree.on_error = on_tree_error
