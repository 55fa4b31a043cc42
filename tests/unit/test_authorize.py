from streams.core import authorize as A
from streams.core import credit


def state(credit_micros=1_000_000, spend=0, allowed=("112",)):
    st, _ = credit.apply_command(None, {"account": "A", "action": "provision", "credit_micros": credit_micros,
                                        "soft_limit_pct": 80, "period_kind": "monthly", "timezone": "UTC",
                                        "tariff_plan": "default", "always_allowed": list(allowed)}, 0)
    if spend:
        credit.apply_charge(st, st["period"], spend, 0, "k")
    return st


def test_prepaid_time_limit_is_remaining_credit_over_rate():
    # 1.00 credit, 0.10 spent, 0.30/min: 0.90 pays 180 s.
    d = A.decide(state(spend=100_000), "+31201234567", 300_000, 0, 0)
    assert d["allowed"] and d["max_duration_s"] == 180 and d["remaining_micros"] == 900_000


def test_time_limit_rounds_down_to_whole_seconds():
    # 0.007 left at 0.08/min: 0.007 / (0.08/60) = 5.25 s -> 5 s.
    d = A.decide(state(credit_micros=7_000), "+31612345678", 80_000, 0, 0)
    assert d["max_duration_s"] == 5


def test_reservations_stop_concurrent_calls_overshooting():
    st, res = state(), A.Reservations()
    first = A.decide(st, "+31201234567", 600_000, res.held("A", 0), 0)
    assert first["max_duration_s"] == 100                 # 1.00 at 0.60/min
    res.add("A", 600_000, 1_000_000, first["max_duration_s"], 0)
    second = A.decide(st, "+31201234567", 600_000, res.held("A", 1), 1)
    assert not second["allowed"] and second["reason"] == "no_credit_left"


def test_call_end_shrinks_reservation_then_it_expires():
    res = A.Reservations()
    r = res.add("A", 600_000, 1_000_000, 100, 0)
    res.end("A", r.rid, 31, 10_000)                       # 31 s at 0.60/min = 0.31
    assert res.held("A", 10_001) == 310_000
    assert res.held("A", 10_000 + A.PENDING_AFTER_END_MS + 1) == 0


def test_profiles_limit_rates_and_block_keeps_emergency():
    low = state(spend=850_000)                            # >= 80 %: low_credit, max 0.40/min
    assert A.decide(low, "+44201234567", 500_000, 0, 0)["reason"] == "rate_above_profile_max"
    assert A.decide(low, "+44201234567", 400_000, 0, 0)["allowed"]
    blocked = state(spend=1_000_000)
    assert A.decide(blocked, "+31201234567", 10_000, 0, 0)["reason"] == "blocked"
    d = A.decide(blocked, "+112", None, 0, 0)
    assert d["allowed"] and d["reason"] == "always_allowed"


def test_unknown_account():
    assert A.decide(None, "+31", 1, 0, 0)["reason"] == "unknown_account"
