"""The bot object and `stylebot run`: the services (metrics, executor, database, the HTTP session)
are made in one place, `run()`, and passed in; the bot builds the launcher from them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
from typing import TYPE_CHECKING

import aiohttp
import discord
import yarl
from discord import gateway, http
from discord.ext import commands

from bot.cogs.ui.job_look import DiscordJobLook
from bot.config import Settings
from bot.executor.base import Executor
from bot.executor.factory import make_executor
from bot.health import HealthServer
from bot.jobs.cooldown import Cooldowns
from bot.jobs.launcher import JobServices, Launcher
from bot.jobs.picks import Picks
from bot.logs import install_redaction
from bot.metrics import BotMetrics
from bot.storage import Storage

if TYPE_CHECKING:
    from bot.jobs.follow import JobMessage

log = logging.getLogger("stylebot")

RECOVERY = "bot.cogs.recovery"
EXTENSIONS = (
    "bot.cogs.errors",
    "bot.cogs.stylize",
    "bot.cogs.picks",
    "bot.cogs.settings",
    RECOVERY,
)


def point_client_at(api_base: str | None, gateway_url: str | None) -> None:
    """Send REST calls and the gateway connection elsewhere (a proxy, or a fake Discord in tests)."""
    if api_base:
        http.Route.BASE = api_base.rstrip("/")
    if gateway_url:
        gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def discord_errors_trace(metrics: BotMetrics) -> aiohttp.TraceConfig:
    """Counts the Discord API requests that fail (status 400 and above, or no answer) by route,
    for every request discord.py makes: REST and interaction responses share its session."""
    trace = aiohttp.TraceConfig()

    async def on_end(_session, _context, params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status >= 400:
            metrics.discord_error(params.method, params.url.path, params.response.status)

    async def on_exception(_session, _context, params: aiohttp.TraceRequestExceptionParams):
        metrics.discord_error(params.method, params.url.path, None)

    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_exception)
    return trace


class StyleBot(commands.AutoShardedBot):
    def __init__(
        self,
        settings_: Settings,
        storage: Storage,
        executor: Executor | None,
        *,
        metrics: BotMetrics,
        session: aiohttp.ClientSession,
        force_sync: bool = False,
    ):
        # the bot never joins voice: no warnings about voice libraries at every start
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        self.metrics = metrics  # what the bot counts (bot/metrics.py), the executor's counts too
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True),
            help_command=None,
            http_trace=discord_errors_trace(self.metrics),
        )
        install_redaction()
        self.settings = settings_
        self.storage = storage
        self.executor: Executor = executor  # type: ignore[assignment]  # None only for `stylebot sync`
        self.force_sync = force_sync
        self.health: HealthServer | None = None
        # the services the extensions share, each reached by its typed attribute
        self.cooldowns = Cooldowns()
        self.picks = Picks()  # pictures picked in the chat with the context menus
        self.followers: set[asyncio.Task] = set()  # one task per job message being followed
        self.session = session  # attachment downloads
        # the one path from an accepted request to a followed job
        self.launcher = Launcher(
            JobServices(
                client=self,
                settings=settings_,
                storage=storage,
                executor=self.executor,
                metrics=metrics,
                session=session,
                follow=self.follow,
                look=DiscordJobLook(),
            )
        )
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
        for extension in EXTENSIONS:
            if extension == RECOVERY and self.executor is None:
                continue  # `stylebot sync`: no jobs to follow
            await self.load_extension(extension)
        await self.sync_commands(force=self.force_sync)
        if self.settings.health_port and self.executor is not None:
            self.health = HealthServer(self, self.settings.health_host, self.settings.health_port)
            await self.health.start()

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Send the command tree to Discord when it changed since the last sync (a hash kept in the
        database), or when forced. Discord rate-limits syncs, so not at every start."""
        guild = discord.Object(self.settings.dev_guild) if self.settings.dev_guild else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(
            json.dumps(payload, sort_keys=True, default=str).encode()
        ).hexdigest()
        key = f"commands:{self.settings.dev_guild or 'global'}"
        if not force and await self.storage.meta.get(key) == digest:
            log.info("the command tree is unchanged since the last sync; not syncing")
            return False
        await self.tree.sync(guild=guild)
        await self.storage.meta.put(key, digest)
        log.info(
            "synced %d command(s) %s",
            len(payload),
            f"to server {guild.id}" if guild else "globally",
        )
        return True

    def follow(self, message: JobMessage) -> None:
        """Keep a job's message up to date until the job ends (a task the bot waits for at close)."""
        task = asyncio.create_task(message.follow(), name=f"follow-{message.handle.id}")
        self.followers.add(task)
        task.add_done_callback(self.followers.discard)

    async def on_ready(self) -> None:
        log.info(
            "logged in as %s (%s) in %d server(s)",
            self.user,
            getattr(self.user, "id", "?"),
            len(self.guilds),
        )

    async def close(self) -> None:
        """Stop taking jobs, tell members whose jobs are queued, finish or cancel running ones."""
        log.info("shutting down")
        if self.executor is not None:
            await self.executor.shutdown(graceful=True, timeout=self.settings.shutdown_grace)
        if self.followers:
            await asyncio.wait(list(self.followers), timeout=15)
        if self.health is not None:
            await self.health.stop()
        await super().close()


class Stopped(Exception):
    """SIGTERM or Ctrl-C arrived: the bot stopped on request (also while it was still starting)."""


async def run(settings_: Settings) -> None:
    """Workers first (they prove the weights), then the database (this creates an SQLite file),
    then Discord. SIGTERM and Ctrl-C stop it at any point; while starting, as Stopped."""
    point_client_at(settings_.discord_api_base, settings_.discord_gateway_url)
    stop = _StopOnSignal(asyncio.get_running_loop())
    metrics = BotMetrics()
    executor = make_executor(settings_, metrics)
    storage: Storage | None = None
    try:
        await executor.start()
        storage = await Storage.open(
            settings_.database_url, settings_ttl=settings_.settings_cache_ttl
        )
        async with aiohttp.ClientSession() as session:
            bot = StyleBot(settings_, storage, executor, metrics=metrics, session=session)
            stop.bot = bot
            async with bot:
                await bot.start(settings_.discord_token.get_secret_value())
    except BaseException:
        if stop.requested:
            raise Stopped() from None  # whatever the stop interrupted (a start, a login) failed
        raise
    finally:
        await executor.shutdown(graceful=False)
        if storage is not None:
            await storage.close()
    if stop.requested:
        raise Stopped()


class _StopOnSignal:
    """SIGTERM and SIGINT: close the bot once it exists; before that, cancel the start."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.requested = False
        self.bot: StyleBot | None = None
        self._task = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.requested:
            return
        self.requested = True
        log.info("%s: stopping", sig.name)
        if self.bot is not None:
            asyncio.ensure_future(self.bot.close())
        elif self._task is not None:
            self._task.cancel()


async def sync(settings_: Settings) -> bool:
    """`stylebot sync`: log in, send the command tree to Discord, log out. No workers start."""
    point_client_at(settings_.discord_api_base, settings_.discord_gateway_url)
    storage = await Storage.open(settings_.database_url, settings_ttl=settings_.settings_cache_ttl)
    try:
        async with aiohttp.ClientSession() as session:
            bot = StyleBot(
                settings_, storage, None, metrics=BotMetrics(), session=session, force_sync=True
            )
            try:
                await bot.login(settings_.discord_token.get_secret_value())  # setup_hook syncs
                return True
            finally:
                await bot.close()
    finally:
        await storage.close()
