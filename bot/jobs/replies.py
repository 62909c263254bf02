"""Where a job's messages go: the interaction's own message while its token lives, then the channel.

A `Reply` holds only plain ids and the token, so it is built the same way from a live interaction
and from a row of the jobs table after a restart.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord.http import handle_message_parameters
from discord.webhook.async_ import async_context

from bot.media.encoding import refit_result
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

    async def tell_privately(self, client: discord.Client, text: str) -> None:
        """A follow-up only the member sees (an ephemeral message on the interaction's token;
        raises discord.HTTPException), as `Interaction.followup.send(ephemeral=True)` sends it."""
        webhook = discord.Webhook.partial(self.application_id, self.token, client=client)
        await async_context.get().execute_webhook(
            self.application_id,
            self.token,
            session=webhook.session,
            proxy=webhook.proxy,
            proxy_auth=webhook.proxy_auth,
            payload={"content": clip(text), "flags": discord.MessageFlags(ephemeral=True).value},
            wait=True,
        )

    async def refuse(self, client: discord.Client, reason: str) -> bool:
        """No job ran: the public message becomes a short note, and the reason goes to the member
        alone. (After a public defer Discord shows the first follow-up publicly and refuses one
        after the original is deleted: the original is edited first.) Should the private
        follow-up fail, the note itself carries the reason. False when the token has expired or
        neither way went through (the caller delivers it otherwise, or gives up). Every call
        survives what `_deliver_once` survives: Discord's refusals, and a network that fails
        (a reset, a timeout) as much as a status does."""
        if not self.token_alive:
            return False
        note = f"❌ <@{self.user_id}>, your job did not start"
        cleared: dict[str, Any] = {"embed": None, "attachments": [], "view": None}
        try:
            await self.edit(client, content=f"{note}: see why just below.", **cleared)
        except Exception as exc:  # noqa: BLE001 (whatever it is, the private note is next)
            log.warning("could not end the message of a refused job: %s", exc)
        try:
            await self.tell_privately(client, reason)
            return True
        except Exception as exc:  # noqa: BLE001 (whatever it is, the public note is next)
            log.warning("could not tell a member privately why their job was refused: %s", exc)
        try:
            await self.edit(client, content=f"{note}. {reason}", **cleared)
            return True
        except Exception as exc:  # noqa: BLE001 (the caller delivers the ending otherwise)
            log.warning("could not tell a member why their job was refused: %s", exc)
            return False

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
        picture: bytes | None = None,
        view: discord.ui.View | None = None,
    ) -> int | None:
        """The end of a job: into its message while the token lives, else (or if that fails) to
        the channel; the message's id. None if neither worked: the caller keeps it for a later
        try. A picture Discord refuses as too large (413, below the limit it advertises at
        times) is made smaller and sent again, up to MAX_REFITS times, each under half the bytes
        of the one refused; one that cannot be made smaller here goes without its picture, said."""
        for _ in range(MAX_REFITS + 1):
            try:
                return await self._deliver_once(client, text, picture, view)
            except TooLarge:
                assert picture is not None
                smaller = await asyncio.to_thread(_refit, picture, len(picture) // 2)
                if smaller is None:
                    picture, text = None, f"{text}\n{NO_ROOM}"
                else:
                    log.warning(
                        "Discord refused a result of %d bytes as too large; sending %d",
                        len(picture), len(smaller),
                    )  # fmt: skip
                    picture, text = smaller, _with_note(text, SMALLER)
        picture, text = None, f"{text}\n{NO_ROOM}"
        return await self._deliver_once(client, text, picture, view)

    async def _deliver_once(
        self, client: discord.Client, text: str, picture: bytes | None, view
    ) -> int | None:
        """One try at each way: the message, then the channel. TooLarge when Discord refused
        the picture's size (trying the channel with the same bytes would only be refused again)."""
        if self.token_alive:
            try:
                return await self.edit(
                    client, content=text, embed=None, attachments=_files(picture), view=view
                )
            except discord.HTTPException as exc:
                if _too_large(exc):
                    raise TooLarge from None
                log.warning(
                    "could not edit the end of a job into its message (%s); posting it", exc
                )
            except Exception as exc:  # whatever it is, the channel is the next way
                log.warning(
                    "could not edit the end of a job into its message (%s); posting it", exc
                )
        try:
            files = _files(picture)
            return await self.post(
                client,
                text,
                **({"file": files[0]} if files else {}),
                **({"view": view} if view else {}),
            )
        except discord.HTTPException as exc:
            if _too_large(exc):
                raise TooLarge from None
            log.warning("could not post the end of a job to channel %s: %s", self.channel_id, exc)
        except Exception as exc:  # whatever it is, the ending is kept and tried again later
            log.warning("could not post the end of a job to channel %s: %s", self.channel_id, exc)
        return None


DEFAULT_UPLOAD_LIMIT = 8 * 1024 * 1024 - 64 * 1024  # where the channel's limit is not known


def upload_limit(interaction: discord.Interaction) -> int:
    """Bytes a result may take: the channel's upload limit, less room for the form's other parts."""
    limit = getattr(interaction, "filesize_limit", 0)
    return limit - 64 * 1024 if limit else DEFAULT_UPLOAD_LIMIT


MAX_REFITS = 3  # a refused picture is made smaller at most this many times
SMALLER = "(made smaller: Discord refused the full size)"
NO_ROOM = "(the picture was too large for Discord, even made smaller, and could not be sent)"


class TooLarge(Exception):
    """Discord answered 413 Payload Too Large (40005: Request entity too large)."""


def _too_large(exc: discord.HTTPException) -> bool:
    return exc.status == 413 or exc.code == 40005


def _files(picture: bytes | None) -> list[discord.File]:
    return [discord.File(io.BytesIO(picture), picture_name(picture))] if picture else []


def _with_note(text: str, note: str) -> str:
    return text if note in text else f"{text}\n{note}"


def _refit(picture: bytes, limit: int) -> bytes | None:
    """The picture within `limit` bytes (on a thread: image work), or None where it cannot be
    made so here."""
    try:
        fitted = refit_result(picture, limit)
    except Exception:  # noqa: BLE001 (a picture this process cannot read: sent without it)
        log.exception("could not make a refused result smaller")
        return None
    return fitted[0] if fitted and len(fitted[0]) <= limit else None


def picture_name(data: bytes) -> str:
    """The file name of a result: stylized.png, .webp, .jpg, .gif or .mp4, by its bytes."""
    if data.startswith(b"\x89PNG"):
        return "stylized.png"
    if data.startswith(b"GIF8"):
        return "stylized.gif"
    if data[4:8] == b"ftyp":
        return "stylized.mp4"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "stylized.webp"
    return "stylized.jpg"
