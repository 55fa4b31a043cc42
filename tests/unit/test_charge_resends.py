"""Re-sent CDRs whose call day differs from the billed copy's are still duplicates.

Keys are stored under the call day (UTC) of the billed copy. A switch that re-sends a CDR with
its start a second later, across midnight, or derives the start in another zone, used to be
looked up in the other day's bucket and billed twice.

Costs by hand from the default tariff: around midnight UTC it is 01:00 in the plan's zone
(Europe/Amsterdam, winter), off-peak, NL mobile 0.06/min, 30 s then per 6 s: 61 s -> 66 s charged
-> 66 * 60_000 / 60 = 66_000 micros.
"""
from __future__ import annotations

from tests.unit.test_charge_keys import DAY, NOW, Stores, batch_msg, canonical, provision_msg

COST = 66_000
MIDNIGHT = NOW // DAY * DAY           # the UTC midnight before NOW (NOW is 11 h past it)


def spend(s: Stores) -> int:
    return sum(s.accounts["A1"]["spend"].values())


def test_a_re_send_shifted_across_midnight_is_a_duplicate_in_a_later_batch():
    s = Stores()
    s.run([provision_msg(0)])
    billed = canonical("c1", 61, start=MIDNIGHT - 500)          # 23:59:59.5, day D-1
    late = canonical("c1", 61, start=MIDNIGHT + 500)            # the re-send says 00:00:00.5, day D
    assert billed["cdr_key"] == late["cdr_key"]
    assert billed["start_ms"] // DAY != late["start_ms"] // DAY
    first = s.run([batch_msg(1, [billed])])
    assert [r["cost_micros"] for r in first.rated] == [COST]
    again = s.run([batch_msg(2, [late])])
    assert again.rated == [] and again.duplicates == 1
    assert spend(s) == COST


def test_a_re_send_shifted_back_across_midnight_in_the_same_batch_is_a_duplicate():
    s = Stores()
    s.run([provision_msg(0)])
    billed = canonical("c2", 61, start=MIDNIGHT + 1_000)
    # A switch that wrote local time (UTC+2) as UTC: two hours earlier, the day before.
    early = canonical("c2", 61, start=MIDNIGHT + 1_000 - 2 * 3_600_000)
    res = s.run([batch_msg(1, [billed]), batch_msg(2, [early])])
    assert [r["start_ms"] for r in res.rated] == [MIDNIGHT + 1_000]
    assert res.duplicates == 1 and spend(s) == COST


def test_after_a_crash_only_the_billed_copy_is_re_emitted_across_midnight():
    s = Stores()
    s.run([provision_msg(0)])
    billed = canonical("c3", 61, start=MIDNIGHT - 200)
    moved = canonical("c3", 61, start=MIDNIGHT + 800)
    s.run([batch_msg(1, [billed]), batch_msg(2, [moved])])
    # Neither offset committed: both come again, and the sink must keep the billed row.
    again = s.run([batch_msg(1, [billed]), batch_msg(2, [moved])])
    assert [r["start_ms"] for r in again.rated] == [MIDNIGHT - 200]
    assert again.redelivered == 1 and again.redelivered_conflicts == 1
    assert spend(s) == COST


def test_other_calls_on_the_next_day_are_still_billed():
    s = Stores()
    s.run([provision_msg(0)])
    res = s.run([batch_msg(1, [canonical("d1", 61, start=MIDNIGHT - 500)]),
                 batch_msg(2, [canonical("d2", 61, start=MIDNIGHT + 500)])])
    assert len(res.rated) == 2 and res.duplicates == 0 and spend(s) == 2 * COST
