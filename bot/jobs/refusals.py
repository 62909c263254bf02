"""Why a member's job did not start, and how the member is told: one reason per refusal (the
label of stylebot_refusals_total) and the texts the launcher and the follower share."""

from __future__ import annotations

from enum import StrEnum

from bot.protocol.messages import BackendBusy, QueueFull, SubmitError, UserLimitReached


class Refusal(StrEnum):
    """Why a member's job did not start (the label of stylebot_refusals_total)."""

    DOWNLOAD = "download"  # an attachment could not be fetched
    BAD_INPUT = "bad_input"  # not a picture we read, too large, too thin, a bad option
    NO_PRESET = "no_preset"
    QUEUE_FULL = "queue_full"
    MEMBER_LIMIT = "member_limit"  # the member has as many jobs as allowed
    BUSY = "busy"  # no worker can take jobs (Redis or the broker away)
    SHUTTING_DOWN = "shutting_down"
    COOLDOWN = "cooldown"
    CHECK = "check"  # another check of the command (permissions, direct messages, ...)


def submit_refusal(exc: SubmitError) -> Refusal:
    """The refusal of a job the executor did not take."""
    if isinstance(exc, QueueFull):
        return Refusal.QUEUE_FULL
    if isinstance(exc, UserLimitReached):
        return Refusal.MEMBER_LIMIT
    if isinstance(exc, BackendBusy):
        return Refusal.BUSY
    return Refusal.SHUTTING_DOWN


def cannot_use(reason: str) -> str:
    """What a member is told of pictures or options that cannot be used (`reason`: the
    checker's own words, which start in lower case)."""
    return f"I cannot use that: {reason[:1].upper()}{reason[1:].rstrip('.')}."
