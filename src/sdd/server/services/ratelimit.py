"""Failed-login throttling, per account and per client address.

A sliding window of recent failures in memory. Each replica counts its own, so behind a load
balancer the effective limit is at most (replicas * limit); that still turns an online guessing
attack from thousands of tries a minute into a handful.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque

from sdd.server.services.errors import TooManyRequests


class LoginThrottle:
    def __init__(self, per_account: int = 10, per_address: int = 50, window_seconds: float = 300.0) -> None:
        self.limits = {"account": per_account, "address": per_address}
        self.window = window_seconds
        self._failures: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return deque()
        return failures

    def check(self, username: str, address: str) -> None:
        """Raise 429 if this account or address failed too often lately."""
        now = time.monotonic()
        for kind, value in (("account", username.lower()), ("address", address)):
            failures = self._recent((kind, value), now)
            if len(failures) >= self.limits[kind]:
                wait = int(failures[0] + self.window - now) + 1
                raise TooManyRequests(f"too many failed sign-ins for this {kind}; try again in {wait} s")

    def failed(self, username: str, address: str) -> None:
        now = time.monotonic()
        self._failures[("account", username.lower())].append(now)
        self._failures[("address", address)].append(now)
