"""The real bot (discord.py client, executor with worker processes, SQLite) against the fake Discord."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import discord
from PIL import Image

from bot.app import StyleBot, point_client_at
from bot.config import Settings
from bot.executor.factory import make_executor
from bot.metrics import BotMetrics
from bot.storage import Storage
from tests.asyncrun import run
from tests.cogs.fake_discord import FakeDiscord, user
from tests.conftest import gradient_image, noise_image, png_bytes

ORIGINAL_BASE = discord.http.Route.BASE
ORIGINAL_GATEWAY = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


class BotHarness:
    def __init__(self, fake: FakeDiscord, database_url: str, **settings):
        self.fake = fake
        self.settings = Settings(
            discord_token="fake-token-for-tests",
            database_url=database_url,
            vgg19_weights="random",
            discord_api_base=fake.api_base,
            discord_gateway_url=fake.gateway_url,
            devices="cpu",
            progress_edit_interval=0.2,
            attachment_hosts="127.0.0.1",
            **{"delivery_retry_interval": 0.5, "instance_timeout": 3.0, **settings},
        )
        self.bot: StyleBot | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> BotHarness:
        point_client_at(self.settings.discord_api_base, self.settings.discord_gateway_url)
        self.storage = await Storage.open(self.settings.database_url)
        self.metrics = BotMetrics()
        self.executor = make_executor(self.settings, self.metrics)  # the local pool, or Celery
        await self.executor.start()
        self.session = aiohttp.ClientSession()
        self.fake.identified.clear()
        self.bot = StyleBot(
            self.settings, self.storage, self.executor, metrics=self.metrics, session=self.session
        )
        self._task = asyncio.create_task(
            self.bot.start(self.settings.discord_token.get_secret_value())
        )
        ready = asyncio.ensure_future(self.bot.wait_until_ready())
        await asyncio.wait([ready, self._task], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            ready.cancel()
            await self.executor.shutdown(graceful=False)
            self._task.result()  # raises what stopped the bot
        assert ready.done(), "the bot did not become ready"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.bot.close()
        try:
            await asyncio.wait_for(self._task, 30)
        finally:
            await self.executor.shutdown(graceful=False)
            await self.session.close()
            await self.storage.close()
            discord.http.Route.BASE = ORIGINAL_BASE
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = ORIGINAL_GATEWAY


ALICE = user(900000000000000001, "alice")
BOB = user(900000000000000002, "bob")


def run_with_fake(coro, timeout: float = 240):
    """Run `coro(fake)` against a fresh fake Discord on 127.0.0.1, within `timeout` seconds."""

    async def wrapped():
        fake = FakeDiscord()
        await fake.start()
        try:
            return await asyncio.wait_for(coro(fake), timeout)
        finally:
            await fake.stop()

    return run(wrapped(), timeout + 60)  # the fake's own start and stop fit in the rest


def picture_attachments(fake: FakeDiscord, content_size=(48, 32)) -> list[dict]:
    content = png_bytes(gradient_image(*content_size))
    style = png_bytes(noise_image(32, 32))
    return [
        fake.add_attachment("content.png", content, "image/png", *content_size),
        fake.add_attachment("style.png", style, "image/png", 32, 32),
    ]


def stylize_options(attachments: list[dict], **options) -> list[dict]:
    types = {
        "steps": 4,
        "size": 4,
        "seed": 4,
        "strength": 10,
        "preserve_colors": 3,
        "optimizer": 3,
        "style_scale": 10,
    }
    result = [
        {"name": "content", "type": 11, "value": attachments[0]["id"]},
        {"name": "style", "type": 11, "value": attachments[1]["id"]},
    ]
    return result + [{"name": k, "type": types[k], "value": v} for k, v in options.items()]


async def stylize_pictures(fake: FakeDiscord, member: dict = ALICE, **options) -> str:
    """`/stylize` with a fresh pair of pictures and `options`, from `member`; its token."""
    attachments = picture_attachments(fake)
    return await fake.slash(
        "stylize",
        stylize_options(attachments, **options),
        member_user=member,
        attachments=attachments,
    )


def image_of(upload) -> Image.Image:
    return Image.open(io.BytesIO(upload.data))


def text_of(request) -> str:
    """The content of a recorded request: a message body, or an interaction callback's data."""
    body = (request if isinstance(request, dict) else request.json) or {}
    return body.get("content") or (body.get("data") or {}).get("content") or ""


def ephemeral(request) -> bool:
    data = (request.json or {}).get("data") or request.json or {}
    return bool((data.get("flags") or 0) & 64)
