"""The bot object and `stylebot run`: resources are made in `run()` and passed in."""

from __future__ import annotations

import asyncio
import logging
import signal

import discord
import yarl
from discord.ext import commands

from bot.cogs import errors, settings, stylize
from bot.cogs.views import CancelButton
from bot.config import Settings
from bot.executor.base import Executor
from bot.storage import Storage

log = logging.getLogger("stylebot")


def point_client_at(api_base: str | None, gateway_url: str | None) -> None:
    """Send REST calls and the gateway connection elsewhere (a proxy, or a fake Discord in tests)."""
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class StyleBot(commands.AutoShardedBot):
    def __init__(self, settings_: Settings, storage: Storage, executor: Executor):
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents(guilds=True), help_command=None)
        self.settings = settings_
        self.storage = storage
        self.executor = executor
        self.tree.on_error = errors.on_tree_error
        if settings_.discord_gateway_url:
            self._use_gateway(settings_.discord_gateway_url)

    def _use_gateway(self, url: str) -> None:
        # AutoShardedBot asks REST for the gateway address and shard count: keep the count,
        # use the configured address.
        original = self.http.get_bot_gateway

        async def get_bot_gateway():
            shards, _, limits = await original()
            return shards, url, limits

        self.http.get_bot_gateway = get_bot_gateway  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        await stylize.setup(self)
        await settings.setup(self)
        self.add_dynamic_items(CancelButton)
        if self.settings.dev_guild:
            guild = discord.Object(self.settings.dev_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s) in %d server(s)", self.user, getattr(self.user, "id", "?"), len(self.guilds))

    async def close(self) -> None:
        """Stop taking jobs, tell members whose jobs are queued, finish or cancel running ones."""
        log.info("shutting down")
        await self.executor.shutdown(graceful=True, timeout=self.settings.shutdown_grace)
        cog = self.get_cog("StylizeCog")
        if cog is not None:
            await cog.wait_for_followers(timeout=15)
        await super().close()


async def run(settings_: Settings) -> None:
    from bot.executor.dispatch import ExecutorConfig
    from bot.executor.pool import LocalExecutor

    point_client_at(settings_.discord_api_base, settings_.discord_gateway_url)
    storage = await Storage.open(settings_.database_url)
    executor = LocalExecutor(ExecutorConfig(
        devices=settings_.device_list, workers_per_device=settings_.workers_per_device,
        max_queued=settings_.max_queued, per_user_limit=settings_.per_user_jobs,
        time_limit=settings_.job_time_limit, weights=settings_.vgg19_weights,
    ))
    await executor.start()
    bot = StyleBot(settings_, storage, executor)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
    try:
        async with bot:
            await bot.start(settings_.discord_token.get_secret_value())
    finally:
        await executor.shutdown(graceful=False)
        await storage.close()
