"""Partner notifications delivered as HTTP webhooks (one endpoint per partner).

``account.notifications`` carries soft/hard-limit notices and service-user thresholds
(streams/core/thresholds.py). A partner system receives them as:

    POST <partner url>
    Content-Type: application/json
    Idempotency-Key: <notification_id>          same on every retry and every redelivery
    X-Cdrflow-Timestamp: <unix seconds>
    X-Cdrflow-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    X-Cdrflow-Attempt: <1, 2, ...>
    body: the notification as JSON (keys sorted; money as integer micros and as a decimal string)

The receiver checks the signature with its shared secret (and may refuse an old timestamp),
and drops a repeated Idempotency-Key: delivery is **at least once**. A 2xx answer is success;
408, 429, 5xx and connection errors are retried with exponential backoff (1 s, 2 s, 4 s ... capped
at ``max_backoff_s``) up to ``max_attempts``; any other 4xx is a permanent refusal (logged, not
retried). The delivery process commits its Kafka position only after a notification was
delivered or permanently refused, so a crash re-sends rather than loses.

Partners are configured in YAML (``CDRFLOW_WEBHOOKS_FILE``)::

    partners:
      - name: acme
        url: https://hooks.acme.example/cdrflow
        secret_env: ACME_WEBHOOK_SECRET      # or secret: "..." (the file is then a secret itself)
        accounts: ["ACME-*", "ACC000001"]    # fnmatch patterns; the first matching partner wins

Secrets are never logged.
"""
from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from streams.core.money import format_micros

log = logging.getLogger("cdrflow.notifications")

SIGNATURE_HEADER = "X-Cdrflow-Signature"
TIMESTAMP_HEADER = "X-Cdrflow-Timestamp"
ATTEMPT_HEADER = "X-Cdrflow-Attempt"
IDEMPOTENCY_HEADER = "Idempotency-Key"

DELIVERED, REFUSED, GAVE_UP = "delivered", "refused", "gave_up"


@dataclass(frozen=True)
class Partner:
    name: str
    url: str
    secret: str = field(repr=False)
    accounts: tuple[str, ...] = ("*",)

    def serves(self, account: str) -> bool:
        return any(fnmatch.fnmatchcase(account, p) for p in self.accounts)


def load_partners(path: Path) -> list[Partner]:
    """Read the partners file; ValueError names the entry at fault (never the secret)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read partners: {exc}") from None
    rows = (data or {}).get("partners") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: expected 'partners:' with a list of partners")
    out = []
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not r.get("name") or not r.get("url"):
            raise ValueError(f"{path}: partner #{i} needs name and url")
        url = str(r["url"])
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{path}: partner {r['name']}: url must be http:// or https://")
        secret = r.get("secret")
        if secret is None and r.get("secret_env"):
            secret = os.environ.get(str(r["secret_env"]))
            if not secret:
                raise ValueError(f"{path}: partner {r['name']}: environment variable {r['secret_env']} is not set")
        if not secret:
            raise ValueError(f"{path}: partner {r['name']}: needs secret or secret_env")
        accounts = r.get("accounts") or ["*"]
        if isinstance(accounts, str):
            accounts = [accounts]
        out.append(Partner(str(r["name"]), url, str(secret), tuple(str(a) for a in accounts)))
    return out


def partner_for(partners: list[Partner], account: str) -> Partner | None:
    return next((p for p in partners if p.serves(account)), None)


# --- the wire format (pure) ------------------------------------------------------------------

def body(note: dict) -> bytes:
    """The JSON body: the notification's fields, with decimal strings beside the micros."""
    doc = dict(note)
    for k in ("spend_micros", "threshold_micros"):
        if doc.get(k) is not None:
            doc[k.replace("_micros", "")] = format_micros(int(doc[k]))
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, payload: bytes, header: str) -> bool:
    """What a receiver does (constant-time compare)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    return hmac.compare_digest(signature(secret, ts, payload), header or "")


def backoff_s(attempt: int, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Wait before retry number ``attempt`` (1 = the first retry): base x 2^(attempt-1), capped."""
    return min(cap_s, base_s * (2 ** (attempt - 1)))


def retryable(status: int | None) -> bool:
    """None: no HTTP answer (connection refused, timeout)."""
    return status is None or status in (408, 429) or status >= 500


# --- delivery --------------------------------------------------------------------------------

@dataclass
class Result:
    outcome: str
    attempts: int
    status: int | None


class Deliverer:
    def __init__(self, partners: list[Partner], *, max_attempts: int = 8, base_backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, timeout_s: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.partners = partners
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.clock = clock

    def _post(self, partner: Partner, payload: bytes, note: dict, attempt: int) -> int | None:
        ts = int(self.clock())
        req = urllib.request.Request(partner.url, data=payload, method="POST", headers={
            "Content-Type": "application/json", IDEMPOTENCY_HEADER: note["notification_id"],
            TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(partner.secret, ts, payload),
            ATTEMPT_HEADER: str(attempt), "User-Agent": "cdrflow-webhooks/1"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return None

    def deliver(self, note: dict) -> Result | None:
        """Send one notification to its partner; None when no partner serves the account."""
        partner = partner_for(self.partners, note["account"])
        if partner is None:
            return None
        payload = body(note)
        status = None
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self.sleep(backoff_s(attempt - 1, self.base_backoff_s, self.max_backoff_s))
            status = self._post(partner, payload, note, attempt)
            if status is not None and 200 <= status < 300:
                log.info("event=webhook_delivered partner=%s id=%s attempts=%d", partner.name,
                         note["notification_id"], attempt)
                return Result(DELIVERED, attempt, status)
            if not retryable(status):
                log.warning("event=webhook_refused partner=%s id=%s status=%s", partner.name,
                            note["notification_id"], status)
                return Result(REFUSED, attempt, status)
        log.error("event=webhook_gave_up partner=%s id=%s attempts=%d status=%s", partner.name,
                  note["notification_id"], self.max_attempts, status)
        return Result(GAVE_UP, self.max_attempts, status)


def run_delivery(client_conf: dict, deliverer: Deliverer, stopper, on_result=lambda note, res: None,
                 group: str = "cdrflow-webhooks", keep_trying: bool = False) -> int:
    """Consume account.notifications and deliver each; commit only after an outcome, so a crash
    re-sends (at least once). A notification that exhausted its attempts is not committed past:
    the process stops with the position on it, to be restarted when the partner is back; with
    ``keep_trying`` (the deliverer ``cdrflow up`` starts) it goes back to that notification and
    tries again after the longest backoff instead, so one partner's outage does not end the stack."""
    from confluent_kafka import Consumer, TopicPartition

    from streams import codecs, topics

    consumer = Consumer({**client_conf, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topics.NOTIFICATIONS])
    delivered = 0
    try:
        while not stopper.stopped():
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                _, note = codecs.decode(msg.value())
            except Exception:
                consumer.commit(message=msg, asynchronous=False)
                continue
            res = deliverer.deliver(note)
            on_result(note, res)
            if res is not None and res.outcome == GAVE_UP:
                if not keep_trying:
                    return delivered
                # Same notification again (same Idempotency-Key); nothing after it is skipped.
                consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                _pause(stopper, deliverer.max_backoff_s)
                continue
            delivered += res is not None and res.outcome == DELIVERED
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
    return delivered


def _pause(stopper, seconds: float) -> None:
    """Sleep, but wake for a stop request (a SIGTERM must not wait a whole backoff)."""
    end = time.monotonic() + seconds
    while not stopper.stopped() and time.monotonic() < end:
        time.sleep(min(0.2, end - time.monotonic()))
