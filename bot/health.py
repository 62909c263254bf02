"""Readiness and Prometheus metrics over HTTP, for operators (off unless STYLEBOT_HEALTH_PORT is set).

GET /healthz   200 when the gateway is connected and at least one worker is ready, else 503;
               a JSON body says which part is not.
GET /metrics   Prometheus text: queue length, running jobs, jobs by outcome, job and step
               seconds, peak memory of the last job per device, ready workers, worker restarts.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.app import StyleBot


def readiness(bot: StyleBot) -> dict[str, bool]:
    executor = bot.executor
    workers = getattr(getattr(executor, "backend", None), "workers_ready", lambda: 0)()
    return {"gateway": bot.is_ready() and not bot.is_closed(), "workers": workers > 0}


def metrics_text(bot: StyleBot) -> str:
    dispatcher = bot.executor
    backend = getattr(dispatcher, "backend", None)
    metrics = getattr(dispatcher, "metrics", None)
    lines = [
        "# HELP stylebot_queue_length Jobs waiting for a worker.",
        "# TYPE stylebot_queue_length gauge",
        f"stylebot_queue_length {getattr(dispatcher, 'queue_length', 0)}",
        "# HELP stylebot_jobs_running Jobs on a worker now.",
        "# TYPE stylebot_jobs_running gauge",
        f"stylebot_jobs_running {getattr(dispatcher, 'running', 0)}",
        "# HELP stylebot_workers_ready Workers able to run jobs.",
        "# TYPE stylebot_workers_ready gauge",
        f"stylebot_workers_ready {backend.workers_ready() if backend else 0}",
        "# HELP stylebot_worker_restarts_total Worker processes started again after they ended.",
        "# TYPE stylebot_worker_restarts_total counter",
        f"stylebot_worker_restarts_total {backend.worker_restarts() if backend else 0}",
        "# HELP stylebot_jobs_total Finished jobs by outcome.",
        "# TYPE stylebot_jobs_total counter",
    ]
    if metrics is not None:
        for key, count in sorted(metrics.outcomes.items()):
            outcome, _, detail = key.partition(":")
            lines.append(f'stylebot_jobs_total{{outcome="{outcome}",detail="{detail}"}} {count}')
        done = metrics.outcomes.get("done", 0)
        lines += [
            "# HELP stylebot_job_seconds Running time of finished jobs.",
            "# TYPE stylebot_job_seconds summary",
            f"stylebot_job_seconds_sum {metrics.job_seconds}",
            f"stylebot_job_seconds_count {done}",
            "# HELP stylebot_step_seconds Time per optimiser step of finished jobs.",
            "# TYPE stylebot_step_seconds summary",
            f"stylebot_step_seconds_sum {metrics.job_seconds}",
            f"stylebot_step_seconds_count {metrics.steps}",
            "# HELP stylebot_job_memory_peak_bytes Peak memory of the last finished job on each device "
            "(CUDA: allocated by torch; CPU: the worker's resident size).",
            "# TYPE stylebot_job_memory_peak_bytes gauge",
        ]
        for device, peak in sorted(metrics.peak_memory_bytes.items()):
            lines.append(f'stylebot_job_memory_peak_bytes{{device="{device}"}} {peak}')
    return "\n".join(lines) + "\n"


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
        parts = readiness(self.bot)
        return web.Response(
            text=json.dumps({"ready": all(parts.values()), **parts}),
            content_type="application/json",
            status=200 if all(parts.values()) else 503,
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=metrics_text(self.bot), content_type="text/plain")
