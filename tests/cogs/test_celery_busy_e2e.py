"""Redis down with the Celery backend: /stylize says "busy, try again"; the rest answers."""

from tests.cogs.harness import (
    ALICE,
    BotHarness,
    ephemeral,
    run_with_fake,
    stylize_pictures,
    text_of,
)


def test_with_redis_down_stylize_says_busy_and_help_still_answers(database_url):
    async def scenario(fake):
        async with BotHarness(
            fake, database_url, executor="celery", redis_url="redis://127.0.0.1:6399/0"
        ):  # nothing listens on 6399
            token = await stylize_pictures(fake, steps=2, size=64)
            refused = await fake.wait_for(
                lambda f: [r for r in f.followups(token) if "busy" in text_of(r)]
            )
            helped = await fake.slash("stylize-help", [], member_user=ALICE)
            help_reply = await fake.wait_for(lambda f: f.callbacks(helped))
            return refused[-1], help_reply[0]

    refused, help_reply = run_with_fake(scenario, 120)
    assert ephemeral(refused) and "try again" in text_of(refused)
    assert "/stylize" in text_of(help_reply)
