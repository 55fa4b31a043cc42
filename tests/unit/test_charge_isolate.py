"""A charge batch in which one CDR makes rating raise (issue 13: the agent used to log the
exception and drop the whole batch, which Faust then acknowledged).

Costs are by hand from the default tariff (NL mobile 0.08/min, billed 30 s then per 6 s):
61 s -> 66 s -> 0.088 = 88_000 micros; 30 s -> 0.04 = 40_000 micros.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
from types import SimpleNamespace

from streams import codecs
from streams.charge_isolate import charge_isolated
from streams.msg import Msg
from streams.pipeline import charge_partition
from tests.unit.test_charge_batch import BOOK, NOW, Table, batch_msg, canonical, provision_msg, raw

BAD_NUMBER = "0612349999"


def flaky_rate(cdr, plan):
    # A rating bug that only this destination triggers.
    if cdr["called_e164"] == "+31" + BAD_NUMBER[1:]:
        raise ZeroDivisionError("tariff rule bug")
    return BOOK.rate(cdr, plan=plan)


def cdr(call_id: str, called: str, billsec: int) -> dict:
    c = canonical(raw(call_id, called, billsec))
    c["raw"] = f"raw-{call_id}".encode()
    c["source_offset"] = int(call_id[1:])
    return c


def provisioned() -> tuple[Table, dict]:
    table, nodes = Table(), {}
    res, states = charge_partition([provision_msg(0)], table.get, flaky_rate, NOW, 35, keys=nodes.get)
    table.apply(res, states)
    return table, nodes


def store(table: Table, nodes: dict, res, states) -> None:
    for nk, v in res.key_writes.items():
        if v is None:
            nodes.pop(nk, None)
        else:
            nodes[nk] = v
    table.apply(res, states)


def test_the_failing_cdr_is_rejected_and_the_rest_rated_once_with_exact_state():
    good1, bad, good2, good3 = (cdr("c1", "0612345678", 61), cdr("c2", BAD_NUMBER, 30),
                                cdr("c3", "0612345678", 30), cdr("c4", "0612345678", 30))
    batch = [batch_msg(2, [good1, bad, good2]), batch_msg(3, [good3])]
    table, nodes = provisioned()

    done = charge_isolated(batch, table.get, flaky_rate, NOW, 35, keys=nodes.get)
    store(table, nodes, done.res, done.states)

    assert sorted(r["call_id"] for r in done.res.rated) == ["c1", "c3", "c4"]
    assert sorted(r["cost_micros"] for r in done.res.rated) == [40_000, 40_000, 88_000]
    [rej] = done.res.rejects
    assert rej["reason"] == "internal_error" and rej["stage"] == "charge"
    assert rej["raw"] == b"raw-c2" and rej["cdr_key"] == bad["cdr_key"]
    assert (rej["source_topic"], rej["source_partition"], rej["source_offset"]) == ("cdr.raw", 0, 2)
    assert "ZeroDivisionError" in rej["detail"] and "cdrflow recycle" in rej["detail"]
    # Nothing silently dropped: 4 CDRs in, 3 rated + 1 rejected + 0 duplicates out.
    assert len(done.res.rated) + len(done.res.rejects) + done.res.duplicates == 4
    assert table["A1"]["spend"]["2026-11"] == 88_000 + 40_000 + 40_000
    assert [f.where for f in done.failures] == ["batch", "message", "cdr"]

    # The stored state and key nodes equal those of a batch that never held the bad CDR.
    ref_table, ref_nodes = provisioned()
    ref_res, ref_states = charge_partition([batch_msg(2, [good1, good2]), batch_msg(3, [good3])], ref_table.get,
                                           flaky_rate, NOW, 35, keys=ref_nodes.get)
    store(ref_table, ref_nodes, ref_res, ref_states)
    assert table == ref_table and nodes == ref_nodes

    # Redelivered after a crash: re-emitted, never charged again; the bad one is rejected again.
    again = charge_isolated(batch, table.get, flaky_rate, NOW, 35, keys=nodes.get)
    store(table, nodes, again.res, again.states)
    assert again.res.redelivered == 3 and [r["reason"] for r in again.res.rejects] == ["internal_error"]
    assert table["A1"]["spend"]["2026-11"] == 168_000


def test_a_batch_without_failures_takes_the_fast_path_unchanged():
    table, nodes = provisioned()
    batch = [batch_msg(2, [cdr("c1", "0612345678", 61)])]
    done = charge_isolated(batch, table.get, flaky_rate, NOW, 35, keys=nodes.get)
    assert done.failures == [] and [r["cost_micros"] for r in done.res.rated] == [88_000]


def test_the_agent_sends_the_good_cdrs_and_the_reject_instead_of_dropping_the_batch(monkeypatch):
    import streams.app  # noqa: F401 - loads the agents in their import order (they import each other)
    import streams.agents.charge as agent
    from streams import topics

    table, nodes = provisioned()
    sent: list[tuple[str, dict]] = []

    async def send(out, part):
        sent.append((out.topic, out))

    def store_state(acct, state, partition):
        table[acct] = copy.deepcopy(state)

    class KeyWriter:
        def put(self, partition, nk, node):
            if node is None:
                nodes.pop(nk, None)
            else:
                nodes[nk] = node

    monkeypatch.setattr(agent, "_send", send)
    monkeypatch.setattr(agent, "load_state", lambda a, read=None: copy.deepcopy(table.get(a)))
    monkeypatch.setattr(agent, "store_state", store_state)
    monkeypatch.setattr(agent, "cdr_keys", nodes)
    monkeypatch.setattr(agent, "key_writer", KeyWriter())
    monkeypatch.setattr(agent, "_open_writers", lambda: None)
    monkeypatch.setattr(agent, "acting_as", lambda _e: contextlib.nullcontext())
    monkeypatch.setattr(agent, "_rate", flaky_rate)
    monkeypatch.setattr(agent, "current_book", lambda: BOOK)
    monkeypatch.setattr(agent, "current_closed", lambda: None)
    monkeypatch.setattr(agent, "utc_now_ms", lambda: NOW)

    m = batch_msg(2, [cdr("c1", "0612345678", 61), cdr("c2", BAD_NUMBER, 30)])
    event = SimpleNamespace(value=m.value, message=SimpleNamespace(topic=m.topic, partition=m.partition,
                                                                   offset=m.offset, timestamp=NOW / 1000))
    asyncio.run(agent._charge_slice(0, [event]))

    rated = [codecs.decode(out.value)[1] for t, out in sent if t == topics.RATED]
    rejected = [codecs.decode(out.value)[1] for t, out in sent if t == topics.REJECTED]
    records = [r for v in rated for r in v.get("records", [v])]
    assert [r["call_id"] for r in records] == ["c1"]
    assert [(r["reason"], r["raw"]) for r in rejected] == [("internal_error", b"raw-c2")]
    assert table["A1"]["spend"]["2026-11"] == 88_000
