"""The bot side of the Celery backend: a Backend for the dispatcher, on the event loop.

- Claim check: `run` stores the job's images in Redis (with a TTL) and sends a task that holds
  their keys; the task id is the job id, so the jobs table's id is also the Celery id.
- Capacity: every worker announces itself in Redis while it can run jobs; the dispatcher
  releases a job only when a worker slot is free, so queue positions stay true and no member
  can fill the broker.
- Events arrive by Redis pub/sub (redis.asyncio, no thread). Each ending is also stored in the
  job's record, and read back after every (re)subscription and every few seconds for jobs in
  flight, so an ending published while the bot was not listening is never lost.
- Cancel: a flag in Redis that the worker reads between steps; a worker that does not answer
  within the grace is revoked with terminate=True.
- Redis down: `unavailable()` says so, and the dispatcher refuses new jobs with "busy".
- Blocking Celery calls (send, revoke) run on one helper thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import redis.asyncio

from bot.executor.base import Backend, Listener
from bot.protocol import celery_keys as keys
from bot.protocol.celery_app import make_celery
from bot.protocol.celery_config import TASK_NAME, CeleryConfig
from bot.protocol.messages import (
    Event,
    FailureKind,
    Job,
    JobCancelled,
    JobDone,
    JobFailed,
    StopReason,
    TaskMessage,
    event_from_json_data,
)

log = logging.getLogger(__name__)

WORKER_SCAN_INTERVAL = 2.0  # seconds between reads of the workers' presence
RECONCILE_INTERVAL = 5.0  # seconds between reads of stored endings of jobs in flight


class CeleryBackend(Backend):
    def __init__(self, config: CeleryConfig, *, cancel_grace: float = 5.0):
        self.config = config
        self.cancel_grace = cancel_grace
        self._listener: Listener | None = None
        self._redis = None
        self._app = make_celery(config)
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="stylebot-celery")
        self._in_flight: set[str] = set()
        self._slots = 0
        self._workers: dict[str, dict] = {}
        self._connected = False
        self._tasks: list[asyncio.Task] = []
        self._closing = False

    # --- Backend ------------------------------------------------------------------------------

    async def start(self, listener: Listener) -> None:
        self._listener = listener
        self._redis = redis.asyncio.Redis.from_url(
            self.config.redis_url, socket_connect_timeout=3, health_check_interval=10
        )
        pubsub = None
        try:
            await self._scan_workers()
            pubsub = await self._subscribe()
        except Exception as exc:  # the bot answers "busy" until Redis is back
            log.error("Redis at %s is not reachable: %s", _safe_url(self.config.redis_url), exc)
        self._tasks = [
            asyncio.create_task(self._listen(pubsub), name="stylebot-celery-events"),
            asyncio.create_task(self._watch(), name="stylebot-celery-workers"),
        ]

    def unavailable(self) -> str | None:
        if not self._connected:
            return "the job queue is not reachable right now; the bot is busy, try again in a few minutes"
        return None

    def free_slots(self) -> int:
        if not self._connected:
            return 0
        return max(0, self._slots - len(self._in_flight))

    def run(self, job: Job) -> None:
        self._in_flight.add(job.id)
        asyncio.ensure_future(self._release(job))

    def stop(self, job_id: str, reason: StopReason) -> None:
        asyncio.ensure_future(self._stop(job_id, reason))

    async def reattach(self, job_id: str) -> bool:
        assert self._redis is not None
        if not await self._redis.exists(keys.job_key(job_id)):
            return False
        self._in_flight.add(job_id)
        asyncio.ensure_future(self._collect([job_id]))
        return True

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()
        self._sender.shutdown(wait=False, cancel_futures=True)

    def workers_ready(self) -> int:
        return len(self._workers) if self._connected else 0

    async def forget(self, job_id: str) -> None:
        """A delivered ending leaves Redis at once: its result and record are no longer needed
        (a bot that restarts re-attaches only to jobs that were not delivered), nor its images
        (a worker killed with SIGKILL, never redelivered, left them for their TTL)."""
        if self._redis is None:
            return
        try:
            await self._redis.delete(
                keys.result_key(job_id),
                keys.job_key(job_id),
                *keys.input_keys(job_id, keys.MAX_STYLES),
            )
        except Exception as exc:  # Redis away: the keys expire with their TTL
            log.warning("could not drop the result of job %s from Redis: %s", job_id, exc)

    # --- inside -------------------------------------------------------------------------------

    async def _release(self, job: Job) -> None:
        """The claim check: images to Redis, then a task with their keys."""
        assert self._redis is not None
        ttl = int(self.config.blob_ttl)
        content_key, *style_keys = keys.input_keys(job.id, len(job.styles))
        message = TaskMessage.of(job)  # the worker derives every key from the job id
        try:
            pipe = self._redis.pipeline()
            pipe.set(content_key, job.content, ex=ttl)
            for key, data in zip(style_keys, job.styles, strict=True):
                pipe.set(key, data, ex=ttl)
            pipe.hset(keys.job_key(job.id), mapping={"state": "queued", "user": job.user_id})
            pipe.expire(keys.job_key(job.id), ttl)
            await pipe.execute()
            await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(self._sender, self._send, message),
                self.config.send_timeout,
            )
        except Exception as exc:
            log.error("could not hand job %s to Celery: %s", job.id, exc)
            self._end(
                JobFailed(
                    job_id=job.id,
                    kind=FailureKind.INTERNAL,
                    message="the job queue is not reachable right now; the bot is busy, try again in a few minutes",
                )
            )

    def _send(self, message: TaskMessage) -> None:
        soft, hard = self.config.task_limits(message.limit_within(self.config.time_limit))
        self._app.send_task(
            TASK_NAME,
            args=[message.to_dict()],
            task_id=message.job_id,
            queue=self.config.queue,
            retry=False,
            soft_time_limit=soft,
            time_limit=hard,
        )

    async def _stop(self, job_id: str, reason: StopReason) -> None:
        assert self._redis is not None
        try:  # the worker's JobCancelled carries the flag's reason back
            await self._redis.set(
                keys.cancel_key(job_id), reason.value, ex=int(self.config.blob_ttl)
            )
        except Exception as exc:
            log.warning("could not ask job %s to stop through Redis: %s", job_id, exc)
        await asyncio.sleep(self.cancel_grace)
        if job_id not in self._in_flight:
            return
        log.warning("job %s did not stop within %.0f s: revoking it", job_id, self.cancel_grace)
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._sender,
                lambda: self._app.control.revoke(job_id, terminate=True, signal="SIGKILL"),
            )
        except Exception as exc:
            log.warning("could not revoke job %s: %s", job_id, exc)
        # whatever the worker does now, the job is over for the member, for the reason it was
        # stopped (a time limit is told as one by the dispatcher); a redelivered copy finds the
        # cancel flag and ends at once
        self._end(JobCancelled(job_id=job_id, reason=reason))

    async def _subscribe(self):
        assert self._redis is not None
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(keys.EVENTS)
        self._set_connected(True)
        return pubsub

    async def _listen(self, pubsub) -> None:
        """Events by pub/sub; after every (re)subscription, the endings stored meanwhile."""
        while not self._closing:
            try:
                if pubsub is None:
                    pubsub = await self._subscribe()
                await self._collect(list(self._in_flight))
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._connected:
                    log.error("lost Redis (%s); new jobs are refused until it is back", exc)
                self._set_connected(False)
                await asyncio.sleep(1.0)
            finally:
                if pubsub is not None:
                    try:
                        await pubsub.aclose()
                    except Exception:
                        pass
                    pubsub = None

    async def _watch(self) -> None:
        """Workers' presence, and the stored endings of jobs in flight (a safety net for a
        message lost in a reconnect)."""
        next_collect = time.monotonic() + RECONCILE_INTERVAL
        while not self._closing:
            await asyncio.sleep(WORKER_SCAN_INTERVAL)
            try:
                await self._scan_workers()
                if time.monotonic() >= next_collect:
                    next_collect = time.monotonic() + RECONCILE_INTERVAL
                    await self._collect(list(self._in_flight))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("Redis not reachable while watching workers: %s", exc)

    async def _scan_workers(self) -> None:
        assert self._redis is not None
        names = [
            k
            async for k in self._redis.scan_iter(
                match=keys.workers_of(self.config.queue), count=100
            )
        ]
        values = await self._redis.mget(names) if names else []
        workers = {n.decode(): json.loads(v) for n, v in zip(names, values, strict=True) if v}
        before = self._slots
        self._workers = workers
        self._slots = sum(int(w.get("slots", 1)) for w in workers.values())
        if self._slots != before and self._listener is not None:
            self._listener.on_capacity()  # more slots to fill, or none: waiting jobs are told

    async def _collect(self, job_ids: list[str]) -> None:
        """Deliver the stored endings of these jobs, if they have ended."""
        assert self._redis is not None
        for job_id in job_ids:
            stored = await self._redis.hget(keys.job_key(job_id), "terminal")
            if stored is not None:
                await self._on_message(stored)

    async def _on_message(self, data: bytes | str) -> None:
        record = json.loads(data)
        job_id = record.get("job_id")
        if job_id not in self._in_flight:
            return  # another bot's job, or one that has ended here already
        image_key = record.pop("image_key", None)
        event = event_from_json_data(record)
        if isinstance(event, JobDone) and image_key:
            assert self._redis is not None
            image = await self._redis.get(image_key)
            if image is None:
                event = JobFailed(
                    job_id=job_id,
                    kind=FailureKind.INTERNAL,
                    message="the result expired before it could be delivered; try again",
                )
            else:
                event = dataclasses.replace(event, image=image)
        if job_id not in self._in_flight:  # ended while the image was read
            return
        if event.terminal:
            self._end(event)
        elif self._listener is not None:
            self._listener.on_event(job_id, event)

    def _end(self, event: Event) -> None:
        if event.job_id not in self._in_flight:
            return
        self._in_flight.discard(event.job_id)
        if self._listener is not None:
            self._listener.on_event(event.job_id, event)
            self._listener.on_capacity()

    def _set_connected(self, connected: bool) -> None:
        was, self._connected = self._connected, connected
        if connected and not was and self._listener is not None:
            self._listener.on_capacity()


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
