"""Readiness and Prometheus metrics over HTTP, for operators (off unless STYLEBOT_HEALTH_PORT is set).

GET /healthz   200 when the gateway is connected and at least one worker is ready, else 503;
               a JSON body says which part is not, and whether the database answers (reported,
               not part of the verdict: the bot keeps endings in memory while it is away).
GET /metrics   Prometheus text (bot/metrics.py): the bot's jobs, queue, refusals and Discord
               errors, and the devices of its local workers.

A scrape reads the queue on the event loop (a few counts) and renders the text on a thread.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from bot.app import StyleBot


VERDICT = ("gateway", "workers")  # the parts /healthz's 200 needs


async def readiness(bot: StyleBot) -> dict[str, bool]:
    """Each part (bot/metrics.READY_PARTS): the gateway connected, a worker ready, the database
    answering. Each is a stylebot_ready series."""
    workers = bot.executor.queue_state().workers_ready
    return {
        "gateway": bot.is_ready() and not bot.is_closed(),
        "database": await bot.storage.answers(),
        "workers": workers > 0,
    }


class HealthServer:
    def __init__(self, bot: StyleBot, host: str, port: int):
        self.bot, self.host, self.port = bot, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        parts = await readiness(self.bot)
        ready = all(parts[part] for part in VERDICT)
        return web.Response(
            text=json.dumps({"ready": ready, **parts}),
            content_type="application/json",
            status=200 if ready else 503,
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        metrics = self.bot.metrics
        metrics.refresh(self.bot.executor.queue_state())
        metrics.set_ready(await readiness(self.bot))
        body = await asyncio.to_thread(metrics.text)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
