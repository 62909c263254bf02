"""Fairness across users: one member's ten jobs do not hold up everybody else.

The next job comes from the user with the least work running; among those, from the user
served longest ago (a user never served yet first, in order of arrival). Within one user's jobs,
first in first out.

Work is counted in costs: a still costs 1, a moving picture its frames (Job.cost). Serving a job
of cost c moves its user c turns back, so a member posting 48-frame clips gets one clip for every
48 stills the others get: clips do not starve stills, and stills do not starve clips.

Batches that fill (`pop(prefer=...)`): where a worker steps jobs of one shape together, the
dispatcher prefers a job that can join a batch already running. The preference never passes a
user with less work running: among the users with the least, one whose next job is preferred
goes first. A user passed over that way is passed at most MAX_PASSED times in a row, then served
whatever the preference says, so no one waits long for a shape that is in fashion.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_PASSED = 4  # times in a row a user may be passed over for a job that joins a batch


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._by_user: dict[Hashable, deque[T]] = {}
        self._costs: dict[int, int] = {}  # id(item) -> its cost, while queued or running
        self._running: Counter[Hashable] = Counter()
        self._last_served: dict[Hashable, int] = {}
        self._arrival: dict[Hashable, int] = {}
        self._passed: Counter[Hashable] = Counter()  # times passed over since last served
        self._tick = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._by_user.values())

    @property
    def users_waiting(self) -> int:
        """How many users have an item waiting (a user without one has no queue here)."""
        return len(self._by_user)

    def push(self, user: Hashable, item: T, cost: int = 1) -> None:
        self._tick += 1
        self._costs[id(item)] = max(1, cost)
        if user not in self._by_user:
            self._by_user[user] = deque()
            self._arrival[user] = self._tick
        self._by_user[user].append(item)

    def mark_running(self, user: Hashable, cost: int = 1) -> None:
        """Count an item of `user` that runs without having been queued here (re-attached)."""
        self._running[user] += max(1, cost)

    def pop(self, prefer: Callable[[T], bool] | None = None) -> T | None:
        """The next item by the fair rule; with `prefer`, a preferred item of a user with as
        little work running goes first, unless that passes the fair choice a MAX_PASSED-th
        time (see the module's rule)."""
        if not self._by_user:
            return None
        user = min(self._by_user, key=lambda u: self._rank(u, self._running, self._last_served))
        if prefer is not None and not prefer(self._by_user[user][0]):
            user = self._preferred_instead_of(user, prefer)
        self._passed.pop(user, None)
        item = self._by_user[user].popleft()
        if not self._by_user[user]:
            del self._by_user[user]
            del self._arrival[user]
        cost = self._costs.pop(id(item), 1)
        self._tick += 1
        self._running[user] += cost
        self._last_served[user] = max(self._tick, self._last_served.get(user, 0)) + cost - 1
        return item

    def _preferred_instead_of(self, fair: Hashable, prefer: Callable[[T], bool]) -> Hashable:
        """The user to serve instead of `fair`: the fairest among those with as little work
        running whose next item is preferred; `fair` itself when there is none, or when it has
        been passed over MAX_PASSED times."""
        if self._passed[fair] >= MAX_PASSED:
            return fair
        least = self._running[fair]
        preferred = [
            u for u in self._by_user if self._running[u] == least and prefer(self._by_user[u][0])
        ]
        if not preferred:
            return fair
        self._passed[fair] += 1
        return min(preferred, key=lambda u: self._rank(u, self._running, self._last_served))

    def finished(self, user: Hashable, cost: int = 1) -> None:
        """A popped item of `user` (of that cost) is no longer running."""
        self._running[user] -= max(1, cost)
        if self._running[user] <= 0:
            del self._running[user]

    def _rank(self, user: Hashable, running: Counter, last_served: dict) -> tuple[int, int, int]:
        return running[user], last_served.get(user, -1), self._arrival[user]

    def remove(self, user: Hashable, item: T) -> bool:
        queue = self._by_user.get(user)
        if queue is None or item not in queue:
            return False
        queue.remove(item)
        self._costs.pop(id(item), None)
        if not queue:
            del self._by_user[user]
            del self._arrival[user]
            self._passed.pop(user, None)
        return True

    def in_order(self) -> list[T]:
        """Every waiting item in the order `pop` would return them if nothing finished (and with
        no preference: a member's position is the fair rule's, which a preference moves by at
        most MAX_PASSED places)."""
        queues = {u: deque(q) for u, q in self._by_user.items()}
        running, last_served, tick = Counter(self._running), dict(self._last_served), self._tick
        order: list[T] = []
        while queues:
            user = min(queues, key=lambda u: self._rank(u, running, last_served))
            item = queues[user].popleft()
            order.append(item)
            if not queues[user]:
                del queues[user]
            cost = self._costs.get(id(item), 1)
            tick += 1
            running[user] += cost
            last_served[user] = max(tick, last_served.get(user, 0)) + cost - 1
        return order

    def drain(self) -> list[T]:
        items = self.in_order()
        self._costs.clear()
        self._by_user.clear()
        self._arrival.clear()
        self._passed.clear()
        return items
