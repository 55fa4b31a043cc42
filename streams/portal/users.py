"""Portal users: scrypt password hashes, grants of accounts / service users, permissions.

The store is one JSON file (``CDRFLOW_PORTAL_USERS_FILE``, default ``var/portal/users.json``),
written by ``cdrflow portal user ...`` and re-read by the portal when it changes. A file, not a
ClickHouse table, because:

* with the local chdb target only one process may open the data path, and the sink holds it
  while the stack runs: the operator could not add a user then;
* it is configuration, not analytics: small, edited by one operator, and a revocation must take
  effect on the next request (the portal checks grants from the store on every request, never
  from the session).

Permissions follow seed 004 (CBOSSics-corporate): ``view`` (account and service-user data,
always part of a grant), ``manage`` (change thresholds, credit and profile), ``finance``
(spend reports: CSV exports and charts).

A grant is per account: the whole account (``users`` is None) or only some of its service
users (a department head). Account-wide data (balance, credit, barring, the account's
itemisation) needs a whole-account grant; a service-user grant shows only those users.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

VIEW, MANAGE, FINANCE = "view", "manage", "finance"
PERMISSIONS = (VIEW, MANAGE, FINANCE)

# scrypt cost: n=2**15, r=8 needs 32 MiB and ~60-100 ms here, OWASP's minimum recommendation.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class StoreError(ValueError):
    """A refused user-store change (unknown user, bad name, ...); the message is for the operator."""


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    if not password:
        raise StoreError("the password must not be empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=_MAXMEM, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=_MAXMEM, dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


# A hash of a random password, verified when the user name is unknown, so a login attempt takes
# as long for a missing user as for a wrong password (no user enumeration by timing).
_DUMMY_HASH: str | None = None


def dummy_verify(password: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    verify_password(password, _DUMMY_HASH)


@dataclass(frozen=True)
class Grant:
    account: str
    perms: frozenset[str]
    users: frozenset[str] | None = None   # None: the whole account

    def whole(self) -> bool:
        return self.users is None


@dataclass
class User:
    name: str
    password_hash: str
    grants: dict[str, Grant] = field(default_factory=dict)
    disabled: bool = False

    def grant(self, account: str) -> Grant | None:
        return None if self.disabled else self.grants.get(account)

    def can(self, account: str, perm: str = VIEW, service_user: str | None = None, *, whole: bool = False) -> bool:
        """The one access rule. ``whole``: account-wide data; ``service_user``: that user's data."""
        g = self.grant(account)
        if g is None or perm not in g.perms:
            return False
        if g.whole():
            return True
        if whole:
            return False
        return service_user is None or service_user in g.users

    def visible_users(self, account: str) -> frozenset[str] | None:
        """None: every service user of the account; else only these."""
        g = self.grant(account)
        return None if g is None or g.whole() else g.users

    def accounts(self) -> list[str]:
        return [] if self.disabled else sorted(self.grants)


def _user_to_json(u: User) -> dict:
    return {"password_hash": u.password_hash, "disabled": u.disabled,
            "grants": {a: {"perms": sorted(g.perms), "users": None if g.users is None else sorted(g.users)}
                       for a, g in sorted(u.grants.items())}}


def _user_from_json(name: str, d: dict) -> User:
    grants = {}
    for acc, g in (d.get("grants") or {}).items():
        users = g.get("users")
        grants[acc] = Grant(acc, frozenset(g.get("perms") or [VIEW]) | {VIEW},
                            None if users is None else frozenset(users))
    return User(name, d["password_hash"], grants, bool(d.get("disabled")))


class UserStore:
    """The JSON file; every change is read-modify-write under an exclusive lock, written atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cache: tuple[tuple[int, int], dict[str, User]] | None = None

    # --- reading (the portal, on every request; cached by mtime and size) ---------------------

    def users(self) -> dict[str, User]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != stamp:
            self._cache = (stamp, self._read())
        return self._cache[1]

    def get(self, name: str) -> User | None:
        return self.users().get(name)

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.get(name)
        if user is None or user.disabled:
            dummy_verify(password)
            return None
        return user if verify_password(password, user.password_hash) else None

    def _read(self) -> dict[str, User]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: not valid JSON ({exc})") from None
        return {n: _user_from_json(n, d) for n, d in (data.get("users") or {}).items()}

    # --- changes (the operator's CLI) -----------------------------------------------------------

    @contextmanager
    def _editing(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        with open(lock, "a") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            users = self._read()
            yield users
            tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
            doc = {"users": {n: _user_to_json(u) for n, u in sorted(users.items())}}
            # 0600: hashes are not passwords, but there is no reason to let others read them.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
                fh.write("\n")
            os.replace(tmp, self.path)
        self._cache = None

    def add(self, name: str, password: str, *, hash_n: int = SCRYPT_N) -> None:
        if not _NAME.match(name or ""):
            raise StoreError(f"user name {name!r}: use 1-64 letters, digits, _ . @ -")
        pw_hash = hash_password(password, n=hash_n)
        with self._editing() as users:
            if name in users:
                raise StoreError(f"user {name} already exists (use `portal user passwd`)")
            users[name] = User(name, pw_hash)

    def set_password(self, name: str, password: str, *, hash_n: int = SCRYPT_N) -> None:
        pw_hash = hash_password(password, n=hash_n)
        with self._editing() as users:
            self._need(users, name).password_hash = pw_hash

    def remove(self, name: str) -> None:
        with self._editing() as users:
            self._need(users, name)
            del users[name]

    def set_disabled(self, name: str, disabled: bool) -> None:
        with self._editing() as users:
            self._need(users, name).disabled = disabled

    def grant(self, name: str, account: str, perms: list[str], service_users: list[str] | None = None) -> Grant:
        bad = [p for p in perms if p not in PERMISSIONS]
        if bad:
            raise StoreError(f"unknown permission {', '.join(bad)}; use {', '.join(PERMISSIONS)}")
        if not account or not account.strip():
            raise StoreError("account must not be empty")
        with self._editing() as users:
            user = self._need(users, name)
            g = Grant(account, frozenset(perms) | {VIEW}, None if not service_users else frozenset(service_users))
            user.grants[account] = g
            return g

    def revoke(self, name: str, account: str) -> None:
        with self._editing() as users:
            user = self._need(users, name)
            if account not in user.grants:
                raise StoreError(f"user {name} has no grant on {account}")
            del user.grants[account]

    @staticmethod
    def _need(users: dict[str, User], name: str) -> User:
        if name not in users:
            raise StoreError(f"no portal user {name!r}")
        return users[name]
