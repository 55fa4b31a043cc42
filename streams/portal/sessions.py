"""Server-side sessions with idle and absolute expiry, and the CSRF token each one carries.

Server-side (a random id in an HttpOnly cookie, the data in memory) rather than a signed cookie:
logout and expiry really end a session, and nothing about the user is in the browser. A portal
restart logs everyone out, which is acceptable for a self-care site. The clock is injectable so
tests move time instead of sleeping.
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Session:
    sid: str
    csrf: str
    created: float
    seen: float
    user: str | None = None
    flash: list[str] = field(default_factory=list)


class Sessions:
    def __init__(self, idle_s: float = 900, max_s: float = 8 * 3600, max_sessions: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.idle_s, self.max_s, self.max_sessions = idle_s, max_s, max_sessions
        self.clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def _alive(self, s: Session, now: float) -> bool:
        return now - s.seen < self.idle_s and now - s.created < self.max_s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = self.clock()
        with self._lock:
            s = self._by_id.get(sid)
            if s is None:
                return None
            if not self._alive(s, now):
                del self._by_id[sid]
                return None
            s.seen = now
            return s

    def new(self, user: str | None = None) -> Session:
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, user)
        with self._lock:
            if len(self._by_id) >= self.max_sessions:
                # Bounded memory: drop the expired ones, then the least recently seen.
                for k in [k for k, v in self._by_id.items() if not self._alive(v, now)]:
                    del self._by_id[k]
                while len(self._by_id) >= self.max_sessions:
                    del self._by_id[min(self._by_id, key=lambda k: self._by_id[k].seen)]
            self._by_id[s.sid] = s
        return s

    def drop(self, sid: str) -> None:
        with self._lock:
            self._by_id.pop(sid, None)


def csrf_ok(session: Session | None, token: str | None) -> bool:
    return session is not None and bool(token) and hmac.compare_digest(session.csrf, str(token))
