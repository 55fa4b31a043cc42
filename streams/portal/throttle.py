"""Login attempt limiting: per user name and per client address, with a lockout window.

Failures are counted in a sliding window (``window_s``). A name with ``max_per_user`` failures,
or an address with ``max_per_address`` failures, in that window is locked out for ``lockout_s``
after its latest failure: logins for it are refused *without checking the password*, so
guessing goes on failing even when the right password comes along. Per name stops one account
being guessed from many addresses; per address stops one address trying many names. A
successful login clears the name's failures (not the address's: a guesser who knows one password
must not reset the counter for the rest). Names that do not exist count like real ones, so the
answer does not tell which names exist. Memory is bounded (oldest keys dropped). The clock is
injectable: tests move time instead of sleeping.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Callable


class LoginThrottle:
    def __init__(self, max_per_user: int = 5, max_per_address: int = 20, window_s: float = 900,
                 lockout_s: float = 900, clock: Callable[[], float] = time.time, max_keys: int = 50_000) -> None:
        self.max_per_user, self.max_per_address = max_per_user, max_per_address
        self.window_s, self.lockout_s = window_s, lockout_s
        self.clock = clock
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._fails: OrderedDict[tuple[str, str], deque] = OrderedDict()

    def _recent(self, key: tuple[str, str], now: float) -> deque:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and now - q[0] >= self.window_s:
            q.popleft()
        return q

    def _locked(self, key: tuple[str, str], limit: int, now: float) -> float:
        q = self._recent(key, now)
        if len(q) >= limit and now - q[-1] < self.lockout_s:
            return q[-1] + self.lockout_s - now
        return 0.0

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until a login for ``user`` from ``address`` is considered again; 0: now."""
        now = self.clock()
        with self._lock:
            return max(self._locked(("u", user.lower()), self.max_per_user, now),
                       self._locked(("a", address), self.max_per_address, now))

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (("u", user.lower()), ("a", address)):
                q = self._recent(key, now)
                q.append(now)
                self._fails[key] = q
                self._fails.move_to_end(key)
            while len(self._fails) > self.max_keys:
                self._fails.popitem(last=False)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._fails.pop(("u", user.lower()), None)
