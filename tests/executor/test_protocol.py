import json

import pytest

from bot.engine.params import StyleParams
from bot.protocol.messages import (
    FailureKind,
    Job,
    JobCancelled,
    JobDone,
    JobFailed,
    JobProgress,
    JobQueued,
    StopReason,
    event_from_dict,
    event_from_json,
)


def test_job_round_trips_through_json():
    job = Job(
        user_id=1,
        guild_id=None,
        content=b"\x89PNG\x00",
        styles=(b"a", b"\xff"),
        params=StyleParams(size=32, style_layers=("relu1_1",)),
    )
    assert Job.from_json(job.to_json()) == job
    assert Job.from_dict(job.to_dict()) == job


def test_events_round_trip_and_are_typed():
    events = [
        JobQueued(job_id="j", position=3),
        JobProgress(
            job_id="j",
            step=1,
            total=2,
            losses={"total": 1.5},
            elapsed=0.1,
            eta=None,
            preview=b"\xff\xd8",
        ),
        JobDone(
            job_id="j",
            image=b"png",
            format="png",
            width=3,
            height=2,
            seed=1,
            steps=2,
            seconds=1.0,
            device="cpu",
            weights="w",
        ),
        JobFailed(job_id="j", kind=FailureKind.TIMEOUT, message="too slow"),
        JobCancelled(job_id="j", reason=StopReason.SHUTDOWN),
    ]
    for event in events:
        assert event_from_json(event.to_json()) == event
        assert event_from_dict(event.to_dict()) == event
    assert events[2].terminal and not events[0].terminal
    # the kinds and reasons stay enums through JSON
    assert event_from_json(events[3].to_json()).kind is FailureKind.TIMEOUT
    assert event_from_json(events[4].to_json()).reason is StopReason.SHUTDOWN


def test_unknown_kinds_are_refused():
    import pytest

    with pytest.raises(ValueError):
        JobFailed(job_id="j", kind="shutdown", message="no such failure kind any more")


def test_one_time_limit_rule_on_both_backends():
    """A clip's cost reaches the Celery worker with the task: its limit there is the bot's (a
    48-frame clip had 43,200 s on the bot's side and 900 s on the worker's), and the task's own
    soft and hard limits follow it."""
    from bot.protocol.celery_config import CeleryConfig
    from bot.protocol.messages import Job, TaskMessage

    job = Job(user_id=1, guild_id=2, content=b"c", styles=(b"s",), params=StyleParams(), cost=48)
    message = TaskMessage.from_dict(TaskMessage.of(job).to_dict())  # as it travels
    on_the_worker = message.job(b"c", (b"s",))
    assert on_the_worker.cost == 48
    assert on_the_worker.limit_within(900) == message.limit_within(900) == job.limit_within(900)
    assert job.limit_within(900) == 43_200
    soft, hard = CeleryConfig.task_limits(message.limit_within(900))
    assert (soft, hard) == (43_260, 43_290)
    own = Job(
        user_id=1, guild_id=2, content=b"c", styles=(), params=StyleParams(), cost=48, time_limit=60
    )
    assert TaskMessage.of(own).limit_within(900) == 60  # a job's own limit still binds


def test_a_jobs_shape_round_trips():
    job = Job(user_id=1, guild_id=None, content=b"c", styles=(b"s",), params=StyleParams(),
              shape=(4032, 3024))  # fmt: skip
    assert Job.from_json(job.to_json()) == job and Job.from_json(job.to_json()).shape == (
        4032,
        3024,
    )


def test_a_celery_task_carries_every_field_of_its_job():
    """The task message is the job less its images, whatever fields a job has; a field this
    version does not know is refused as the job's bad input, not a crash."""
    from bot.engine.params import InvalidParams
    from bot.protocol.messages import Job, TaskMessage

    job = Job(
        user_id=1, guild_id=2, content=b"c", styles=(b"s1", b"s2"), params=StyleParams(size=96),
        time_limit=30.0, result_limit=1000, cost=3, shape=(640, 480),
    )  # fmt: skip
    travelled = TaskMessage.from_dict(json.loads(json.dumps(TaskMessage.of(job).to_dict())))
    assert travelled.styles == 2 and travelled.job_id == job.id
    assert travelled.job(b"c", (b"s1", b"s2")) == job
    newer = TaskMessage(fields={**TaskMessage.of(job).fields, "priority": 1}, styles=2)
    with pytest.raises(InvalidParams, match="priority"):
        newer.job(b"c", (b"s1", b"s2"))
