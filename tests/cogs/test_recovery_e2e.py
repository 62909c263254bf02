"""Nothing lost: a bot killed mid-job, and endings that Discord refused for a while."""

import asyncio
import sys
import time

from tests.cogs.harness import (
    ALICE,
    BOB,
    BotHarness,
    picture_attachments,
    stylize_options,
    stylize_pictures,
    text_of,
)
from tests.cogs.harness import (
    run_with_fake as run,
)
from tests.cogs.processes import bot_env, bot_process, kill_tree


def test_a_job_lost_with_a_killed_bot_is_told_and_can_be_retried(database_url):
    async def scenario(fake):
        process = bot_process(fake, database_url)
        try:
            await asyncio.wait_for(fake.identified.wait(), 90)
            await asyncio.sleep(0.5)  # READY and GUILD_CREATE reach the bot
            attachments = picture_attachments(fake)
            token = await fake.slash(
                "stylize",
                stylize_options(attachments, steps=200, size=64),
                member_user=ALICE,
                attachments=attachments,
            )
            await fake.wait_for(lambda f: any("/200 " in text_of(e) for e in f.edits(token)))
            bobs = picture_attachments(fake)
            waiting = await fake.slash(
                "stylize",
                stylize_options(bobs, steps=3, size=64),
                member_user=BOB,
                attachments=bobs,
            )
            await fake.wait_for(lambda f: any("Queued" in text_of(e) for e in f.edits(waiting)))
        finally:
            kill_tree(process)  # kill -9 in the middle of the job
        # the default instance timeout (90 s): the dead bot ran on this host, so the new one
        # knows at once that its pid is gone
        async with BotHarness(fake, database_url, instance_timeout=90.0):
            ready = time.monotonic()
            told = await fake.wait_for(
                lambda f: [e for e in f.edits(token) if "was lost" in text_of(e)], timeout=60
            )
            told_after = time.monotonic() - ready
            # Bob's job had not started: it is queued again by itself and ends
            await fake.wait_for(
                lambda f: [e for e in f.edits(waiting) if "Done in" in text_of(e)], timeout=120
            )
            custom_id = told[-1].json["components"][0]["components"][0]["custom_id"]
            message = fake.originals[token]
            refused = await fake.press(custom_id, message, member_user=BOB)
            await fake.wait_for(lambda f: f.callbacks(refused))
            retried = await fake.press(custom_id, message, member_user=ALICE)
            done = await fake.wait_for(
                lambda f: [e for e in f.edits(retried) if "Done in" in text_of(e)], timeout=120
            )
        return told[-1], fake.callbacks(refused), done[-1], told_after

    told, refused, done, told_after = run(scenario)
    print(f"\nthe member was told {told_after:.1f} s after the new bot was ready")
    assert told_after < 15, told_after
    assert "painting" in text_of(told) and "Retry" in str(told.json["components"])
    assert "Only the member" in text_of(refused[0])
    assert "200 steps" in text_of(done) and done.files


def test_an_ending_discord_refused_is_delivered_later(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url, delivery_retry_interval=0.5):
            token = await stylize_pictures(fake, steps=60, size=64)
            await fake.wait_for(
                lambda f: any(
                    "Painting" in text_of(e) or "/60" in text_of(e) for e in f.edits(token)
                )
            )
            fake.refusing = True  # the edit and the channel post both fail
            refused = await fake.wait_for(
                lambda f: len([m for m in f.channel_messages() if "Done in" in text_of(m)]) >= 2
            )
            fake.refusing = False
            since = len(fake.requests)

            def delivered(f):  # into the job's message (its token still lives) or the channel
                ends = f.channel_messages() + f.edits(token)
                return [m for m in f.requests[since:] if m in ends and "Done in" in text_of(m)]

            posted = await fake.wait_for(delivered, timeout=30)
            await asyncio.sleep(1.5)  # a few more rounds of the retrier: it must not post twice
            return refused, posted, delivered(fake), fake.edits(token)

    refused, posted, all_posts, edits = run(scenario)
    assert refused  # the first post and at least one retry were refused
    assert posted[0] in edits and posted[0].files  # the job's own message, with the picture
    assert len(all_posts) == 1


def test_stylebot_sync_sends_the_commands_and_stops(database_url):
    async def scenario(fake):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "sync",
            env=bot_env(fake, database_url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        puts = [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/commands")]
        return process.returncode, out.decode(), err.decode(), puts

    code, out, err, puts = run(scenario)
    assert code == 0, err
    assert "sent to Discord" in out and len(puts) == 1
    assert {c["name"] for c in puts[0].json} == {
        "stylize",
        "stylize-settings",
        "stylize-help",
        "stylize-history",
        "Stylize: use as content",
        "Stylize: use as style",
    }


def test_the_result_arrives_while_the_database_is_down(database_url, tmp_path):
    """Every write to the jobs table fails from the moment the job starts to its end."""
    from sqlalchemy.ext.asyncio import create_async_engine

    async def scenario(fake):
        async with BotHarness(fake, database_url, cooldown_seconds=0) as harness:
            first = picture_attachments(fake)
            blocker = await fake.slash(
                "stylize",
                stylize_options(first, steps=500, size=64),
                member_user=BOB,
                attachments=first,
            )
            await fake.wait_for(lambda f: any("/500 " in text_of(e) for e in f.edits(blocker)))
            second = picture_attachments(fake)
            token = await fake.slash(
                "stylize",
                stylize_options(second, steps=5, size=64),
                member_user=ALICE,
                attachments=second,
            )
            await fake.wait_for(lambda f: any("Queued" in text_of(e) for e in f.edits(token)))
            working = harness.storage.db.engine
            harness.storage.db.engine = create_async_engine(
                f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/db"
            )
            try:
                await harness.executor.cancel(
                    harness.executor.job_ids()[0]
                )  # Bob's: Alice's starts
                return await fake.wait_for(
                    lambda f: [e for e in f.edits(token) if "Done in" in text_of(e)]
                )
            finally:
                await harness.storage.db.engine.dispose()
                harness.storage.db.engine = working

    done = run(scenario)
    assert done[-1].files


def test_an_ending_the_database_missed_is_written_when_it_is_back_and_never_redone(
    database_url, tmp_path
):
    """The database is down when the job ends: the member gets the result, the ending waits in
    memory and is written once the database is back; a bot started later on the same database
    neither runs the job again nor tells its member it was lost (it did both: the row stayed
    `running`)."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.storage.db import jobs

    async def state_of(storage, token):
        async with storage.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(jobs.c.state, jobs.c.delivered).where(jobs.c.token == token)
                )
            ).one()
        return row.state, bool(row.delivered)

    async def scenario(fake):
        async with BotHarness(fake, database_url, cooldown_seconds=0) as harness:
            attachments = picture_attachments(fake)
            token = await fake.slash(
                "stylize",
                stylize_options(attachments, steps=40, size=64),
                member_user=ALICE,
                attachments=attachments,
            )
            await fake.wait_for(lambda f: any("/40 " in text_of(e) for e in f.edits(token)))
            working = harness.storage.db.engine
            harness.storage.db.engine = create_async_engine(
                f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/db"
            )
            try:
                await fake.wait_for(
                    lambda f: [e for e in f.edits(token) if "Done in" in text_of(e)]
                )
            finally:
                await harness.storage.db.engine.dispose()
                harness.storage.db.engine = working
            while await state_of(harness.storage, token) != ("done", True):
                await asyncio.sleep(0.1)  # the retry's backoff: at most a few seconds here
        async with BotHarness(fake, database_url, cooldown_seconds=0) as later:
            await asyncio.sleep(4.0)  # past instance_timeout (3 s): an orphan would be taken now
            final = await state_of(later.storage, token)
        return fake, token, final

    fake, token, final = run(scenario)
    texts = [text_of(m) for m in (*fake.edits(token), *fake.followups(token))]
    assert sum("Done in" in t for t in texts) == 1
    assert not any("lost" in t for t in texts) and final == ("done", True)


def test_an_orphan_this_version_cannot_read_is_told_and_the_round_goes_on(database_url):
    """Three jobs when the bot dies: Alice's painting, Bob's and Carol's waiting. Bob's stored
    parameters hold one this version does not know (a newer version wrote them): Bob is told his
    job cannot be resumed; Alice hears hers was lost, Carol's is queued again and ends."""
    import json

    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.storage.db import jobs
    from tests.cogs.fake_discord.payloads import user

    carol = user(900000000000000003, "carol")

    async def from_a_newer_version(token):
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as conn:
                row = (
                    await conn.execute(sa.select(jobs.c.params).where(jobs.c.token == token))
                ).one()
                params = {**json.loads(row.params), "brush_texture": "oil"}
                await conn.execute(
                    sa.update(jobs).where(jobs.c.token == token).values(params=json.dumps(params))
                )
        finally:
            await engine.dispose()

    async def scenario(fake):
        process = bot_process(fake, database_url)
        try:
            await asyncio.wait_for(fake.identified.wait(), 90)
            await asyncio.sleep(0.5)
            tokens = []
            for member, steps in ((ALICE, 200), (BOB, 3), (carol, 3)):
                attachments = picture_attachments(fake)
                tokens.append(
                    await fake.slash(
                        "stylize",
                        stylize_options(attachments, steps=steps, size=64),
                        member_user=member,
                        attachments=attachments,
                    )
                )
                if member is ALICE:
                    await fake.wait_for(
                        lambda f: any("/200 " in text_of(e) for e in f.edits(tokens[0]))
                    )
            for token in tokens[1:]:
                await fake.wait_for(
                    lambda f, t=token: any("Queued" in text_of(e) for e in f.edits(t))
                )
        finally:
            kill_tree(process)
        alice, bob, carols = tokens
        await from_a_newer_version(bob)
        async with BotHarness(fake, database_url, instance_timeout=90.0):
            told_bob = await fake.wait_for(
                lambda f: [e for e in f.edits(bob) if "cannot resume it" in text_of(e)], timeout=60
            )
            await fake.wait_for(lambda f: [e for e in f.edits(alice) if "was lost" in text_of(e)])
            done = await fake.wait_for(
                lambda f: [e for e in f.edits(carols) if "Done in" in text_of(e)], timeout=120
            )
        return told_bob[-1], done[-1]

    told_bob, done = run(scenario)
    assert "/stylize" in text_of(told_bob) and done.files


def test_a_passing_error_at_start_is_tried_again_and_a_slow_round_never_starves_the_heartbeat(
    database_url, monkeypatch
):
    """Issue 48, items 1 and 4. A job a dead bot left waiting; reading its kept pictures fails
    once (the database away for a moment): it is queued again at the next round and its result
    arrives, not "this version cannot resume it". Then the recovery rounds are made slow (a late
    delivery can take 48 s): the heartbeat goes on all the same, so no other bot process takes
    this live one's jobs for orphans."""
    import sqlalchemy as sa

    from bot.engine.params import StyleParams
    from bot.protocol.messages import JobStatus, new_job_id
    from bot.storage import JobRecord, Storage
    from bot.storage.db import instances
    from bot.storage.jobs import JobStore
    from tests.cogs.fake_discord import CHANNEL_ID, GUILD_ID
    from tests.conftest import gradient_image, noise_image, png_bytes

    job_id = new_job_id()

    async def left_by_a_dead_bot():
        storage = await Storage.open(database_url)
        try:
            record = JobRecord(
                id=job_id, user_id=int(ALICE["id"]), guild_id=GUILD_ID, channel_id=CHANNEL_ID,
                application_id=1, token="expired", token_expires_at=0.0,
                state=JobStatus.QUEUED, params=StyleParams(size=64, steps=3, seed=11),
                summary="strength 1 · 64 px · 3 steps", styles=1,
            )  # fmt: skip
            pictures = [png_bytes(gradient_image(48, 32)), png_bytes(noise_image(32, 32))]
            await storage.jobs.add(record, pictures, keep_inputs=600)
        finally:
            await storage.close()

    failures = []
    images = JobStore.images

    async def images_once_failing(self, wanted):
        if not failures:
            failures.append(wanted)
            raise ConnectionError("the database went away for a moment")
        return await images(self, wanted)

    monkeypatch.setattr(JobStore, "images", images_once_failing)

    async def scenario(fake):
        await left_by_a_dead_bot()
        async with BotHarness(fake, database_url) as harness:
            done = await fake.wait_for(
                lambda f: [m for m in f.channel_messages() if "Done in" in text_of(m)], timeout=120
            )
            cog = harness.bot.get_cog("RecoveryCog")
            seen = []

            async def slow_round():
                seen.append(time.time())
                await asyncio.sleep(30)

            cog.retry_deliveries = slow_round
            while not seen:
                await asyncio.sleep(0.1)
            await asyncio.sleep(4.0)  # a round held up for longer than the instance timeout (3 s)
            async with harness.storage.engine.connect() as conn:
                beat = (
                    await conn.execute(
                        sa.select(instances.c.seen_at).where(
                            instances.c.id == harness.storage.jobs.instance
                        )
                    )
                ).scalar()
            return fake.channel_messages(), done[-1], time.time() - beat

    messages, done, silent_for = run(scenario)
    assert failures == [job_id]  # the first try failed, and was not the last
    assert not any("cannot resume" in text_of(m) or "lost" in text_of(m) for m in messages)
    assert "seed 11" in text_of(done) and done.files
    assert silent_for < 2.0, silent_for  # beats every second while the round is stuck
