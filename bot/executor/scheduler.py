"""Fairness across users: one member's ten jobs do not hold up everybody else.

The next job comes from the user with the least work running; among those, from the user
served longest ago (a user never served yet first, in order of arrival). Within one user's jobs,
first in first out.

Work is counted in costs: a still costs 1, a moving picture its frames (Job.cost). Serving a job
of cost c moves its user c turns back, so a member posting 48-frame clips gets one clip for every
48 stills the others get: clips do not starve stills, and stills do not starve clips.

No other preference reorders the line: the position a member is told is the order in which the
jobs are released while nothing finishes. (A preference for jobs that join a running batch was
tried and removed: it passed members whose positions did not move, and with several workers or
Celery it did not even reach the batch it was for; issue 43.)
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._by_user: dict[Hashable, deque[T]] = {}
        self._costs: dict[int, int] = {}  # id(item) -> its cost, while queued or running
        self._running: Counter[Hashable] = Counter()
        self._last_served: dict[Hashable, int] = {}
        self._arrival: dict[Hashable, int] = {}
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

    def pop(self) -> T | None:
        """The next item by the fair rule (the first of `in_order()`)."""
        if not self._by_user:
            return None
        user = min(self._by_user, key=lambda u: self._rank(u, self._running, self._last_served))
        item = self._by_user[user].popleft()
        if not self._by_user[user]:
            del self._by_user[user]
            del self._arrival[user]
        cost = self._costs.pop(id(item), 1)
        self._tick += 1
        self._running[user] += cost
        self._last_served[user] = max(self._tick, self._last_served.get(user, 0)) + cost - 1
        return item

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
        return True

    def in_order(self) -> list[T]:
        """Every waiting item in the order `pop` returns them while nothing finishes: the
        positions members are told."""
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
        return items
