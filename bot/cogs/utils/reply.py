"""Where a job's messages go: the interaction's own message while its token lives, then the channel.

A `Reply` holds only plain ids and the token, so it is built the same way from a live interaction
and from a row of the jobs table after a restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord.http import handle_message_parameters
from discord.webhook.async_ import async_context

from bot.text import clip

if TYPE_CHECKING:
    from bot.storage import JobRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    application_id: int
    token: str  # the interaction token: it edits the original message for 15 minutes
    token_expires_at: float  # epoch seconds, with a margin before Discord's limit
    channel_id: int | None
    user_id: int

    @classmethod
    def of(cls, interaction: discord.Interaction, token_ttl: float) -> Reply:
        return cls(
            interaction.application_id,
            interaction.token,
            time.time() + token_ttl,
            interaction.channel_id,
            interaction.user.id,
        )

    @classmethod
    def of_record(cls, record: JobRecord) -> Reply:
        return cls(
            record.application_id,
            record.token,
            record.token_expires_at,
            record.channel_id,
            record.user_id,
        )

    @property
    def token_alive(self) -> bool:
        return time.time() < self.token_expires_at

    async def edit(self, client: discord.Client, **fields: Any) -> int:
        """Edit the interaction's original message; its id (raises discord.HTTPException).

        Through discord.py's own original-response route, the one `Interaction.
        edit_original_response` takes (`/messages/@original`, written literally), here without
        the Interaction, which a bot that restarted no longer has. `Webhook.edit_message` takes
        a message id and would send "@original" percent-quoted."""
        if isinstance(fields.get("content"), str):
            fields["content"] = clip(fields["content"])
        webhook = discord.Webhook.partial(self.application_id, self.token, client=client)
        with handle_message_parameters(**fields) as params:
            data = await async_context.get().edit_original_interaction_response(
                self.application_id,
                self.token,
                session=webhook.session,
                proxy=webhook.proxy,
                proxy_auth=webhook.proxy_auth,
                payload=params.payload,
                multipart=params.multipart,
                files=params.files,
            )
        return int(data["id"])

    async def post(self, client: discord.Client, text: str, **fields: Any) -> int:
        """An ordinary channel message that mentions the member (raises discord.HTTPException)."""
        if self.channel_id is None:
            raise discord.ClientException("the job has no channel to post to")
        channel = client.get_partial_messageable(self.channel_id)
        message = await channel.send(
            clip(f"<@{self.user_id}> {text}"),
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(self.user_id)]),
            **fields,
        )
        return message.id

    async def deliver(
        self,
        client: discord.Client,
        text: str,
        *,
        file: discord.File | None = None,
        view: discord.ui.View | None = None,
    ) -> int | None:
        """The end of a job: into its message while the token lives, else (or if that fails) to the
        channel; the message's id. None if neither worked: the caller keeps it for a later try."""
        if self.token_alive:
            try:
                return await self.edit(
                    client, content=text, embed=None, attachments=[file] if file else [], view=view
                )
            except Exception as exc:  # whatever it is, the channel is the next way
                log.warning(
                    "could not edit the end of a job into its message (%s); posting it", exc
                )
                if file is not None:
                    file.reset()
        try:
            return await self.post(
                client, text, **({"file": file} if file else {}), **({"view": view} if view else {})
            )
        except Exception as exc:  # whatever it is, the ending is kept and tried again later
            log.warning("could not post the end of a job to channel %s: %s", self.channel_id, exc)
            return None
