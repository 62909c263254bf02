"""Members' cooldowns, per server, in memory: a claim is taken when a member asks for a job and is
kept when the job starts or given back when it does not (a refusal, an error). The claim is an
object the request carries to the launcher, so that nothing else needs to know it exists."""

from __future__ import annotations

import time
from collections.abc import Callable

Key = tuple[int | None, int]  # (server, member)


class CooldownActive(Exception):
    """The member's cooldown is not over."""

    def __init__(self, retry_after: float):
        super().__init__(f"on cooldown for {retry_after:.0f} s")
        self.retry_after = retry_after


class Claim:
    """One member's cooldown, taken for one request: `keep` when its job started, `give_back`
    when none did. Either settles it; what comes after is ignored, so a path that gives back
    whatever happened may run after one that kept it."""

    def __init__(self, cooldowns: Cooldowns, key: Key, previous: float | None, mark: float):
        self._cooldowns, self._key, self._previous, self._mark = cooldowns, key, previous, mark
        self.settled = False

    def keep(self) -> None:
        self.settled = True

    def give_back(self) -> None:
        if not self.settled:
            self.settled = True
            self._cooldowns.restore(self._key, self._previous)

    def refund(self) -> None:
        """A kept claim whose job turned out never to run (the worker could not read its
        pictures): given back, unless the member has claimed again since."""
        if self._cooldowns.marked(self._key) == self._mark:
            self.settled = True
            self._cooldowns.restore(self._key, self._previous)


class Cooldowns:
    """When each member last started a job, per server."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._last: dict[Key, float] = {}
        self._clock = clock

    def left(self, guild_id: int | None, user_id: int, seconds: float) -> float:
        """Seconds until the member may start again; 0 or less: now."""
        last = self._last.get((guild_id, user_id))
        return 0.0 if last is None else seconds - (self._clock() - last)

    def claim(self, guild_id: int | None, user_id: int, seconds: float) -> Claim:
        """Take the member's cooldown at once (raise CooldownActive if it is not over): called on
        the event loop with no await between the check and the mark, so of several requests sent
        together only one passes."""
        key = (guild_id, user_id)
        left = self.left(*key, seconds)
        if left > 0:
            raise CooldownActive(left)
        mark = self._clock()
        claim = Claim(self, key, self._last.get(key), mark)
        self._last[key] = mark
        return claim

    def marked(self, key: Key) -> float | None:
        return self._last.get(key)

    def restore(self, key: Key, previous: float | None) -> None:
        """Put back what a claim replaced."""
        if previous is None:
            self._last.pop(key, None)
        else:
            self._last[key] = previous
