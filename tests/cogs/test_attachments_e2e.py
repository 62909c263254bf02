"""Bad attachments and forged options, refused privately before anything is queued."""

import asyncio
import io
import logging

import pytest

from tests.cogs.fake_discord import FakeDiscord
from tests.cogs.harness import (
    ALICE,
    BotHarness,
    ephemeral,
    picture_attachments,
    stylize_options,
    stylize_pictures,
    text_of,
)
from tests.cogs.harness import (
    run_with_fake as run,
)
from tests.conftest import gradient_image, noise_image, png_bytes


def truncated_png() -> bytes:
    data = png_bytes(noise_image(64, 64))
    return data[: len(data) // 2]


def thin_png() -> bytes:
    return png_bytes(gradient_image(3000, 3))


def large_png() -> bytes:
    """A real PNG of about 12 MB (noise does not compress)."""
    buffer = io.BytesIO()
    noise_image(2000, 2000, seed=9).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def attachment_from(
    fake: FakeDiscord, data: bytes, *, declared: int | None = None, url: str | None = None
) -> dict:
    info = fake.add_attachment("content.png", data, "image/png", 64, 64)
    if declared is not None:
        info["size"] = declared
    if url is not None:
        info["url"] = url
    return info


@pytest.mark.parametrize(
    "case, reason",
    [
        ("declares 1 KB, serves 12 MB", "larger than"),
        ("truncated", "damaged"),
        ("10000x3", "too thin"),
        ("not from the CDN", "does not come from Discord's CDN"),
        ("network error", "could not be downloaded"),
    ],
)
def test_bad_attachments_are_refused_privately_without_a_slot_or_a_cooldown(
    database_url, case, reason
):
    async def scenario(fake):
        async with BotHarness(fake, database_url, max_attachment_bytes=10 * 1024 * 1024) as harness:
            style = picture_attachments(fake)[1]
            if case == "declares 1 KB, serves 12 MB":
                content = attachment_from(fake, large_png(), declared=1024)
            elif case == "truncated":
                content = attachment_from(fake, truncated_png())
            elif case == "10000x3":
                content = attachment_from(fake, thin_png())
            elif case == "not from the CDN":
                content = attachment_from(
                    fake,
                    png_bytes(gradient_image(64, 64)),
                    url=fake.base.replace("127.0.0.1", "localhost") + "/cdn/x",
                )
            else:  # nothing listens on port 9 of 127.0.0.1
                content = attachment_from(
                    fake, png_bytes(gradient_image(64, 64)), url="http://127.0.0.1:9/cdn/x.png"
                )
            token = await fake.slash(
                "stylize",
                stylize_options([content, style], size=64),
                member_user=ALICE,
                attachments=[content, style],
            )
            followups = await fake.wait_for(lambda f: f.followups(token))
            await asyncio.sleep(0.2)
            queued_jobs = harness.executor.job_ids()
            # no cooldown was taken: the same member can start a good job at once
            good = picture_attachments(fake)
            again = await fake.slash(
                "stylize",
                stylize_options(good, steps=2, size=64),
                member_user=ALICE,
                attachments=good,
            )
            await fake.wait_for(lambda f: any("Done in" in text_of(e) for e in f.edits(again)))
            return followups, queued_jobs, fake.originals.get(token), fake.callbacks(token)

    followups, queued_jobs, original, callbacks = run(scenario)
    assert callbacks[0].json["type"] == 5  # acknowledged at once, before the download
    assert ephemeral(followups[0]) and reason in text_of(followups[0]), text_of(followups[0])
    assert queued_jobs == []
    # the public "thinking" message became a short note, without the reason
    assert "did not start" in original["content"] and reason not in original["content"]


@pytest.mark.parametrize(
    "option, value, reason",
    [
        ("style_scale", 4.0, "style scale must be between"),
        ("seed", -1, "seed must be between"),
        ("size", 48, "size must be between"),
        ("steps", 99999, "steps must be between"),
    ],
)
def test_forged_options_outside_the_declared_ranges_are_refused(
    database_url, option, value, reason
):
    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            token = await stylize_pictures(fake, **{option: value})
            callbacks = await fake.wait_for(lambda f: f.callbacks(token))
            return callbacks, harness.executor.job_ids()

    callbacks, jobs = run(scenario)
    assert ephemeral(callbacks[0]) and reason in text_of(callbacks[0])
    assert jobs == []


def test_no_token_in_the_logs_at_any_level(database_url, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario(fake):
        async with BotHarness(fake, database_url):
            token = await stylize_pictures(fake, steps=2, size=64)
            await fake.wait_for(lambda f: any("Done in" in text_of(e) for e in f.edits(token)))
            return token

    token = run(scenario)
    # the bot's own logs (aiohttp.access is the fake Discord's server, in this same process)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "fake-token-for-tests" not in text
    assert token not in text
    assert "/interactions/" in text and "/callback" in text  # the requests are logged, redacted
    assert "INTERACTION_CREATE" in text and "'token': '<redacted>'" in text


def test_three_commands_sent_together_start_one_job_under_a_cooldown(database_url):
    """The cooldown is taken when the command is checked, not after the download: of three
    commands sent at once under a 600 s cooldown, one starts and two are told to slow down."""
    from tests.cogs.fake_discord import GUILD_ID

    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            settings = await harness.storage.settings.read(GUILD_ID)
            await harness.storage.settings.write(
                GUILD_ID, settings.replace(cooldown_seconds=600), by=1
            )
            tokens = []
            for _ in range(3):
                pictures = picture_attachments(fake)
                tokens.append(
                    await fake.slash(
                        "stylize",
                        stylize_options(pictures, steps=2, size=64),
                        member_user=ALICE,
                        attachments=pictures,
                    )
                )
            await fake.wait_for(lambda f: all(f.callbacks(t) for t in tokens))
            await fake.wait_for(
                lambda f: any("Done in" in text_of(e) for t in tokens for e in f.edits(t))
            )
            return [fake.callbacks(t)[0] for t in tokens]

    answers = run(scenario)
    started = [a for a in answers if a.json["type"] == 5]
    slowed = [a for a in answers if "Slow down" in text_of(a)]
    assert len(started) == 1 and len(slowed) == 2, [text_of(a) for a in answers]


def test_a_refusal_that_meets_a_network_error_still_ends_the_job(database_url):
    """Issue 48, item 5: the worker finds the content damaged, and every call on the
    interaction's webhook has its connection reset (no discord.HTTPException): the refusal
    cannot be told there, so the ending goes to the channel as any ending does, and the job's
    row ends (not `running` for good, with a Cancel button)."""
    import sqlalchemy as sa

    from bot.storage.db import jobs

    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            style = picture_attachments(fake)[1]
            content = attachment_from(fake, truncated_png())
            fake.resetting_webhooks = True
            await fake.slash(
                "stylize",
                stylize_options([content, style], size=64),
                member_user=ALICE,
                attachments=[content, style],
            )
            told = await fake.wait_for(
                lambda f: [m for m in f.channel_messages() if "could not run" in text_of(m)]
            )
            for _ in range(50):  # the row's last write follows the delivery
                async with harness.storage.engine.connect() as conn:
                    # the one job (a refusal recorded first drops the row's token)
                    row = (await conn.execute(sa.select(jobs.c.state, jobs.c.delivered))).one()
                if row.state != "running":
                    break  # (it was recorded before the member was told)
                await asyncio.sleep(0.1)
            return told[-1], row

    told, row = run(scenario)
    assert "damaged" in text_of(told) and ALICE["id"] in text_of(told)
    assert row.state == "refused"  # recorded first, before any Discord call: never `running`
