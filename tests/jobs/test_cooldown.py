"""Cooldown claims: taken at once, kept when a job starts, given back when none does."""

import pytest

from bot.jobs.cooldown import CooldownActive, Cooldowns


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_claim_blocks_the_next_until_the_cooldown_is_over():
    clock = Clock()
    cooldowns = Cooldowns(clock)
    cooldowns.claim(1, 7, 60).keep()
    clock.now += 59
    with pytest.raises(CooldownActive) as refused:
        cooldowns.claim(1, 7, 60)
    assert refused.value.retry_after == pytest.approx(1)
    cooldowns.claim(2, 7, 60)  # another server: its own cooldown
    cooldowns.claim(1, 8, 60)  # another member
    clock.now += 1
    cooldowns.claim(1, 7, 60)


def test_a_claim_given_back_restores_what_it_replaced():
    clock = Clock()
    cooldowns = Cooldowns(clock)
    cooldowns.claim(1, 7, 60).keep()
    clock.now += 100
    second = cooldowns.claim(1, 7, 60)
    second.give_back()  # its job did not start: the first claim's time stands again
    assert cooldowns.left(1, 7, 60) == pytest.approx(-40)
    fresh = Cooldowns(clock)
    fresh.claim(1, 7, 60).give_back()
    assert fresh.left(1, 7, 60) == 0.0  # as if never claimed


def test_giving_back_a_kept_claim_does_nothing():
    """Paths that give back whatever happened (leaving a request's block) may run after the
    launcher kept the claim: the job started, so the cooldown stands."""
    cooldowns = Cooldowns(Clock())
    claim = cooldowns.claim(1, 7, 60)
    claim.keep()
    claim.give_back()
    with pytest.raises(CooldownActive):
        cooldowns.claim(1, 7, 60)


def test_a_refund_gives_back_a_kept_claim_unless_the_member_claimed_again():
    clock = Clock()
    cooldowns = Cooldowns(clock)
    first = cooldowns.claim(1, 7, 60)
    first.keep()
    first.refund()  # its job never ran: the member may start at once
    assert cooldowns.left(1, 7, 60) == 0.0
    older = cooldowns.claim(1, 7, 60)
    older.keep()
    clock.now += 61
    newer = cooldowns.claim(1, 7, 60)
    newer.keep()
    older.refund()  # too late: the newer claim stands
    with pytest.raises(CooldownActive):
        cooldowns.claim(1, 7, 60)
