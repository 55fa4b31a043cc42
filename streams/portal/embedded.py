"""Assembling the portal (store, directory, follower, config) and serving it in a thread.

``cdrflow portal`` serves it in its own process. On the local stack the sink serves it in a
thread of its own process instead (``--portal-port``): chdb allows one process per data path and
the sink holds it, so the portal shares the sink's backend. The backend's lock serialises the
portal's queries with the sink's inserts (measured in the closing note of issue 14: landing is
not slowed materially; the portal's queries are small, FINAL over one account).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("cdrflow.portal")


@dataclass
class Portal:
    app: object
    cfg: object
    store: object
    directory: object
    follower: object | None = None
    server: object | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        cfg = self.server.config
        return f"http://{cfg.host}:{cfg.port}/"

    def stop(self, timeout_s: float = 10) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout_s)
        if self.follower is not None:
            self.follower.stop()


def currency(settings) -> str:
    if settings.portal_currency:
        return settings.portal_currency
    try:
        import yaml

        doc = yaml.safe_load(Path(settings.tariff_file).read_text(encoding="utf-8"))
        return str((doc or {}).get("currency") or "EUR")
    except (OSError, ValueError, AttributeError):
        return "EUR"


def assemble(backend, settings, *, kafka_conf: dict | None, accounts_file: Path | None = None,
             users_file: Path | None = None, follow: bool = True) -> Portal:
    """The app over ``backend``. ``kafka_conf`` None: read-only (changes refused, nothing followed)."""
    from streams.portal.app import PortalConfig, create_app
    from streams.portal.directory import Directory
    from streams.portal.follower import ControlFollower
    from streams.portal.sessions import Sessions
    from streams.portal.throttle import LoginThrottle
    from streams.portal.users import UserStore

    directory = Directory()
    accounts_file = accounts_file or settings.portal_accounts_file
    if accounts_file:
        directory.load_file(accounts_file)
    send = follower = None
    if kafka_conf is not None:
        from streams.cli.account import send as send_cmds

        send = lambda cmd: send_cmds(kafka_conf, [cmd], timeout_s=10)   # noqa: E731
        if follow:
            follower = ControlFollower(kafka_conf, directory).start()
    cfg = PortalConfig(
        currency=currency(settings), cookie_secure=settings.portal_cookie_secure, send_command=send,
        sessions=Sessions(settings.portal_session_idle_s, settings.portal_session_max_s),
        throttle=LoginThrottle(settings.portal_login_max_per_user, settings.portal_login_max_per_address,
                               settings.portal_login_window_s, settings.portal_login_lockout_s),
        followed=follower is not None)
    store = UserStore(users_file or settings.portal_users_file)
    return Portal(create_app(backend, store, directory, cfg), cfg, store, directory, follower)


def serve_in_thread(portal: Portal, host: str, port: int, timeout_s: float = 15) -> Portal:
    """Start uvicorn in a daemon thread (no signal handlers there: the host process owns them)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(portal.app, host=host, port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, name="portal", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            if portal.follower is not None:
                portal.follower.stop()
            raise RuntimeError(f"the portal did not start on {host}:{port} (port in use?)")
        time.sleep(0.05)
    portal.server, portal.thread = server, thread
    log.info("event=portal_listening url=http://%s:%d/", host, port)
    return portal


def start_for_sink(backend, bootstrap: str, host: str, port: int) -> Portal | None:
    """The sink's portal thread over the sink's own backend; a portal that fails to start is
    logged and left out, never a reason to stop landing."""
    from streams.settings import get_settings

    settings = get_settings()
    try:
        portal = assemble(backend, settings,
                          kafka_conf={**settings.kafka_client_config(), "bootstrap.servers": bootstrap})
        return serve_in_thread(portal, host, port)
    except Exception as exc:  # noqa: BLE001
        log.error("event=portal_not_started host=%s port=%d error=%r", host, port, exc)
        return None


DEMO_USER = "demo"


def demo_login(users_file: Path, accounts: list[str]) -> str:
    """Create (or reset) the demo portal user with a fresh random password, granted ``accounts``
    with every permission. The password is returned to be printed once; only its scrypt hash is stored."""
    import secrets

    from streams.portal.users import UserStore

    store = UserStore(users_file)
    password = secrets.token_urlsafe(12)
    if store.get(DEMO_USER) is None:
        store.add(DEMO_USER, password)
    else:
        store.set_password(DEMO_USER, password)
    for acc in accounts:
        store.grant(DEMO_USER, acc, ["manage", "finance"])
    return password
