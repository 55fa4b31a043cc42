"""Agent: canonical CDRs and control commands -> rating, spend per period, barring transitions.

Rating lives here rather than in its own agent because it depends on per-account state (the
account's plan, later its volume tier), and an extra hop would double Faust's per-message cost.
"""
from __future__ import annotations

import logging

import orjson

from streams import codecs, topics
from streams.app import app, settings
from streams import charge_outputs, direct_send
from streams.batching import (OUTPUT_MARGIN, acting_as, by_partition, byte_slices, check_rereads, reread_if_skipped,
                              to_msg)
from streams.faust_compat import OffsetWatch, store_reader
from streams.core import credit
from streams.core.charge import utc_now_ms
from streams.core.periods import period_of
from streams.metrics import COUNTS, count, count_rejects
from streams.charge_isolate import charge_isolated
from streams.supervise import die
from streams.periods_feed import current_closed
from streams.tariffs import current_book

log = logging.getLogger("cdrflow.charge")

charge_channel = app.topic(topics.NORMALIZED, topics.CONTROL, value_serializer="raw")
rated_topic = app.topic(topics.RATED, partitions=settings.partitions, value_serializer="raw")
commission_topic = app.topic(topics.COMMISSIONS, partitions=settings.partitions, value_serializer="raw")
rejected_topic = app.topic(topics.REJECTED, partitions=settings.partitions, value_serializer="raw")
barring_topic = app.topic(topics.BARRING, partitions=settings.partitions, value_serializer="raw")
state_topic = app.topic(topics.STATE, partitions=settings.partitions, value_serializer="raw")
control_topic = app.topic(topics.CONTROL, partitions=settings.partitions, value_serializer="raw")
notification_topic = app.topic(topics.NOTIFICATIONS, partitions=settings.partitions, value_serializer="raw")
reply_topic = app.topic(topics.REPLIES, partitions=settings.partitions, value_serializer="raw")
_TOPICS = {topics.RATED: rated_topic, topics.COMMISSIONS: commission_topic, topics.REJECTED: rejected_topic,
           topics.BARRING: barring_topic, topics.STATE: state_topic, topics.NOTIFICATIONS: notification_topic,
           topics.REPLIES: reply_topic}
# Every output fits one producer request: a 1 MiB broker limit once crash-looped the worker on
# one take_events batch's rated records.
MAX_OUTPUT_BYTES = settings.producer_max_request_bytes - OUTPUT_MARGIN
# Input bytes charged per slice of a batch. An account value carries its slice's new keys
# (~50 bytes per CDR, against 170-400 canonical bytes), so its changelog record stays under half
# the slice: < 512 KiB at 1 MiB, whatever the producer limit (issue 16: records <= 1 MiB).
SLICE_BYTES = min(MAX_OUTPUT_BYTES, 1 << 20)

# Keys are the account's UTF-8 bytes (raw codec): Faust's web router hashes the serialized key
# with murmur2, and only raw bytes hash to the partition every producer routes the account to.
# Values are the state as JSON bytes (raw codec), held as bytes in the store: 496 MB per million
# accounts instead of 1.7 GB as live dicts (measured), and the changelog encoding is done once.
accounts = app.Table(topics.ACCOUNT_TABLE, default=None, partitions=settings.partitions,
                     key_type=bytes, value_type=bytes)
# The CDR keys each account applied, in small nodes keyed by (account, call day, hash prefix)
# (streams/core/dedup.py): a batch writes only the nodes it changed, so its cost and changelog
# records do not grow with the account's history. Written while acting as an event of the
# account's partition, like ``accounts``, so both changelogs use the input's partition.
cdr_keys = app.Table(topics.KEYS_TABLE, default=None, partitions=settings.partitions,
                     key_type=bytes, value_type=bytes)


offset_watch = OffsetWatch()

# Account values, key-store nodes and state snapshots: one or more per account per batch, sent
# with librdkafka and acknowledged before each offset commit (streams/direct_send.py). Opened on
# the first batch, so that importing the app (tests, CLI) connects nothing.
_direct: direct_send.DirectProducer | None = None
account_writer: direct_send.TableWriter | None = None
key_writer: direct_send.TableWriter | None = None


async def _flush_direct() -> None:
    # Runs inside Faust's producer flush, right before an offset commit: a record the broker did
    # not store must stop the worker before that commit (the input is then read again).
    try:
        await _direct.flush()
    except direct_send.DirectSendError as exc:
        die("charge", exc)


def _open_writers() -> None:
    global _direct, account_writer, key_writer
    if account_writer is not None:
        return
    if settings.direct_send:
        _direct = direct_send.DirectProducer(settings.kafka_client_config(), settings.producer_max_request_bytes)
        direct_send.flush_before_commit(_flush_direct)
    account_writer = direct_send.TableWriter(accounts, _direct)
    key_writer = direct_send.TableWriter(cdr_keys, _direct)


def load_state(account: str, read=None) -> dict | None:
    raw = (read or accounts.get)(account.encode())
    return orjson.loads(raw) if raw else None


def store_state(account: str, state: dict, partition: int) -> None:
    # orjson's result keeps a 4 KiB buffer whatever its length; the copy is exact-size (measured:
    # 496 MB per million accounts with the copy, 4.2 GB without).
    account_writer.put(partition, account.encode(), bytes(memoryview(orjson.dumps(state))))


async def _send(out: charge_outputs.Output, part: int) -> None:
    if _direct is not None and out.topic == topics.STATE:
        _direct.send(out.topic, None, out.key, out.value)
    elif out.key is None:
        await _TOPICS[out.topic].send(value=out.value, partition=part)
    else:
        await _TOPICS[out.topic].send(key=out.key, value=out.value)


def _rate(cdr: dict, plan: str):
    return current_book().rate(cdr, plan=plan)


@app.agent(charge_channel)
async def charge(stream):
    async for events in stream.take_events(settings.batch_max, settings.batch_within_s):
        await reread_if_skipped(app, offset_watch, events, "charge")
        for part, evs in by_partition(events).items():
            await _charge_partition(part, evs)


async def _charge_partition(part: int, evs: list) -> None:
    # One slice of input at a time: per-slice work, the account values it writes (they carry
    # the slice's new keys) and its outputs are bounded by the slice's input bytes.
    slices = 0
    for piece in byte_slices(evs, lambda e: len(e.value or b""), SLICE_BYTES):
        slices += 1
        await _charge_slice(part, piece)
    count("charge_extra_slices", slices - 1)


async def _charge_slice(part: int, evs: list) -> None:
    _open_writers()
    now = utc_now_ms()
    # Arrival order keeps each topic-partition in offset order, which replay detection relies on.
    msgs = [to_msg(e) for e in evs]
    # A bug must not stop billing for every account, nor drop the batch: the failing inputs are
    # isolated and become recyclable internal_error rejects (streams/charge_isolate.py).
    read_account = store_reader(accounts)
    done = charge_isolated(msgs, lambda a: load_state(a, read_account), _rate, now, settings.dedup_horizon_days,
                           book=current_book(), keys=store_reader(cdr_keys), closed=current_closed())
    res, states = done.res, done.states
    for f in done.failures:
        log.error("event=charge_failed scope=%s partition=%s topic=%s offset=%s index=%s", f.where, part,
                  f.topic, f.offset, f.index, exc_info=f.error)
        count(f"charge_{f.where}_errors")
    # Outputs first, state last: if we crash in between, the redelivered input finds the state
    # unchanged and simply applies again; the outputs it repeats collapse by key downstream.
    # Each output fits one producer request (streams/charge_outputs.py).
    rated_msgs = 0
    for out in charge_outputs.before_store(res, MAX_OUTPUT_BYTES):
        rated_msgs += out.topic == topics.RATED
        await _send(out, part)
    with acting_as(evs[-1]):
        # Key nodes before account values; a crash between the two is handled either way (an
        # account value carries its last batch's keys, and a node ahead of its account value's
        # offset does not count), see streams/core/dedup.py.
        for nk, node in res.key_writes.items():
            key_writer.put(part, nk, node)
        for acct in res.touched:
            store_state(acct, states[acct], part)
    for out in charge_outputs.after_store(res, states, now):
        await _send(out, part)
    count("rated", len(res.rated) - res.redelivered)
    count("redelivered", res.redelivered)
    # Rated messages beyond one per batch: how often the producer limit split the output.
    count("rated_splits", max(0, rated_msgs - 1))
    count("redelivered_conflicts", res.redelivered_conflicts)
    count("key_node_writes", len(res.key_writes))
    count("duplicates", res.duplicates)
    count("rejected_charge", len(res.rejects))
    count_rejects("charge", res.rejects)
    count("barring_events", len(res.events))
    count("notifications", len(res.notifications))
    count("commands", res.commands)
    for err in res.command_errors:
        log.warning("control command refused: %s", err)


@app.timer(interval=5.0)
async def charge_rereads() -> None:
    check_rereads(offset_watch, "charge", die)


@app.timer(interval=settings.period_check_s)
async def close_periods():
    """Reset idle accounts at their local period boundary. The timer only *asks* (a roll_period
    command on the account's control partition); the agent applies it in order with the CDRs,
    so the state is only ever written from stream iteration."""
    now = utc_now_ms()
    labels: dict[tuple[str, str], str] = {}
    due = []
    for key, raw in list(accounts.items()):
        st = orjson.loads(raw)
        cfg = st["cfg"]
        zone_kind = (cfg["timezone"], cfg["period_kind"])
        label = labels.get(zone_kind)
        if label is None:
            label = labels[zone_kind] = period_of(now, *zone_kind)
        if label > st["period"]:
            due.append(key.decode() if isinstance(key, bytes) else key)
    for acct in due:
        cmd = {"command_id": f"roll:{acct}:{now}", "account": acct, "action": "roll_period", "issued_ms": now}
        await control_topic.send(key=acct.encode(), value=codecs.encode(codecs.CONTROL, cmd))
    count("period_rolls_requested", len(due))


@app.page("/cdrflow/stats")
async def stats(web, request):
    return web.json(dict(COUNTS))


@app.page("/cdrflow/assignment")
async def assignment(web, request):
    """Which account partitions this worker owns, and whether a rebalance is in progress: lets
    orchestration and tests wait for a real take-over instead of guessing."""
    actives = app.assignor.assigned_actives() if app.assignor else set()
    owned = sorted(tp.partition for tp in actives if tp.topic == topics.NORMALIZED)
    return web.json({"partitions": owned, "rebalancing": bool(app.rebalancing)})
