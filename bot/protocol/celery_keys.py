"""The Redis keys and the channel that the bot and the workers share (one place, one spelling).

Per job (all with a TTL, so that nothing outlives its use):
- input:<job>:content, input:<job>:style:<i>  the images (claim check: the task carries the keys)
- job:<job>        a hash: attempts, state, worker, and the terminal event once the job ended
- result:<job>     the result image (the terminal event refers to it)
- cancel:<job>     set when the bot asks the job to stop; its value is the reason
Per worker: worker:<queue>:<name>, refreshed while it can run jobs (its value: JSON, with its
slots).
Every event is published on one channel, EVENTS, as JSON.
"""

from __future__ import annotations

import re

from bot.protocol.messages import JOB_ID

PREFIX = "stylebot:"
EVENTS = PREFIX + "events"
WORKER_TTL = 15  # seconds a worker's presence lasts without a refresh
WORKER_REFRESH = 5.0


MAX_STYLES = 16  # style images one job may have, as the task message says


def check_job_id(job_id: object) -> None:
    """A job id as the bot makes them (32 hex digits), or ValueError: keys are built from it."""
    if not isinstance(job_id, str) or not re.fullmatch(JOB_ID, job_id):
        raise ValueError(f"not a job id: {job_id!r}")


def input_keys(job_id: str, styles: object) -> list[str]:
    """The keys of a job's images: its content, then each of its `styles` style images."""
    check_job_id(job_id)
    if not isinstance(styles, int) or not 1 <= styles <= MAX_STYLES:
        raise ValueError(f"a job has 1 to {MAX_STYLES} style images, not {styles!r}")
    return [content_key(job_id), *(style_key(job_id, i) for i in range(styles))]


def content_key(job_id: str) -> str:
    return f"{PREFIX}input:{job_id}:content"


def style_key(job_id: str, index: int) -> str:
    return f"{PREFIX}input:{job_id}:style:{index}"


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def result_key(job_id: str) -> str:
    return f"{PREFIX}result:{job_id}"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}cancel:{job_id}"


def worker_key(queue: str, name: str) -> str:
    """A worker's presence, per queue: only workers of the bot's own queue give it slots."""
    return f"{PREFIX}worker:{queue}:{name}"


def workers_of(queue: str) -> str:
    """The pattern that matches the presence of every worker of `queue`."""
    return f"{PREFIX}worker:{queue}:*"
