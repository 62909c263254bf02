"""What the buttons on job messages do: Retry a lost job, a result button's new job (🎲 ➕ ➖ 🎨
🔍) from the same images, or Delete. New jobs go through the launcher (bot/jobs/launcher.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.cogs.ui.checks import guild_settings, job_request
from bot.cogs.ui.failures import message_for
from bot.engine.params import InvalidParams, StyleParams
from bot.guild_policy import NothingToChange, ResultAction, Summary, may_reveal, params_again
from bot.storage import JobRecord

if TYPE_CHECKING:
    from bot.app import StyleBot


async def retry(interaction: discord.Interaction[StyleBot], job_id: str) -> None:
    """Run a lost job again, for the member who started it, with the images kept for it."""
    record = await interaction.client.storage.jobs.get(job_id)
    if record is None or interaction.user.id != record.user_id:
        await interaction.response.send_message(
            "Only the member who started this job can retry it.", ephemeral=True
        )
        return
    try:
        params = record.style_params()
    except InvalidParams as exc:
        await interaction.response.send_message(
            f"I cannot run this job again: {exc}. Please send the pictures again with /stylize.",
            ephemeral=True,
        )
        return
    await start_again(interaction, record, params, Summary(record.summary))


async def again(
    interaction: discord.Interaction[StyleBot], job_id: str, action: ResultAction
) -> None:
    """A result button: a new job from the same images, as the member who pressed it; or
    Delete, for the member who asked or one with Manage Messages."""
    record = await interaction.client.storage.jobs.get(job_id)
    if record is None:
        await interaction.response.send_message("I no longer know this picture.", ephemeral=True)
        return
    if action is ResultAction.delete:
        await delete(interaction, record)
        return
    owner = record.uploader
    if not may_reveal(action, interaction.user.id, owner):
        await interaction.response.send_message(
            f"Only <@{owner}>, who uploaded this picture, can ask for less style, its own "
            "colours or a larger size: those would show more of it. 🎲 and ➕ work for "
            "everyone.",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        return
    settings = await guild_settings(interaction)
    try:
        params, summary = params_again(record.style_params(), action, settings, record.styles)
    except NothingToChange as exc:
        await interaction.response.send_message(f"Nothing to change: {exc}.", ephemeral=True)
        return
    except InvalidParams as exc:
        await interaction.response.send_message(f"That does not work here: {exc}.", ephemeral=True)
        return
    await start_again(interaction, record, params, summary)


async def start_again(
    interaction: discord.Interaction[StyleBot],
    record: JobRecord,
    params: StyleParams,
    summary: Summary,
) -> None:
    """A new job of the pressing member, through the same checks as /stylize."""
    try:
        async with job_request(interaction) as (_, claim):
            await interaction.client.launcher.start_again(
                interaction, record, params, summary, claim
            )
    except app_commands.CheckFailure as exc:
        await interaction.response.send_message(message_for(exc) or "Not now.", ephemeral=True)


async def delete(interaction: discord.Interaction[StyleBot], record: JobRecord) -> None:
    if interaction.user.id != record.user_id and not interaction.permissions.manage_messages:
        await interaction.response.send_message(
            "Only the member who asked for this picture, or someone with Manage Messages, can delete it.",
            ephemeral=True,
        )
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        if interaction.message is not None:
            await interaction.message.delete()
        await interaction.followup.send("Deleted.", ephemeral=True)
    except discord.HTTPException as exc:
        await interaction.followup.send(
            f"I could not delete it ({exc.text or exc.status}).", ephemeral=True
        )
