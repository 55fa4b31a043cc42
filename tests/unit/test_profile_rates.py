"""Issue 10 extra: maximum prices per minute of normal and low_credit are set per customer
(seed 000: "e.g. 0.80 and 0.40"), not constants."""
from __future__ import annotations

import pytest

from streams import codecs
from streams.cli.account import provision
from streams.cli.main import UserError
from streams.core import credit
from streams.msg import Msg
from streams.pipeline import charge_partition

NOW = 1_795_000_000_000


def test_a_customer_s_own_maximum_rates_travel_to_events_and_state():
    cmd = provision("C1", "1.00", max_rate_normal="1.20", max_rate_low="0.25")
    assert (cmd["max_rate_normal_micros"], cmd["max_rate_low_micros"]) == (1_200_000, 250_000)
    # Through the real wire format and the charge step.
    msg = Msg("account.control", 0, 0, NOW, codecs.encode(codecs.CONTROL, cmd))
    res, states = charge_partition([msg], {}.get, lambda c, p: None, NOW, 35)
    st = states["C1"]
    assert credit.snapshot(st, NOW)["max_rate_micros_per_min"] == 1_200_000
    [soft] = credit.apply_charge(st, st["period"], 800_000, NOW, "k1")          # 80 % of 1.00
    assert (soft["new_profile"], soft["max_rate_micros_per_min"]) == ("low_credit", 250_000)
    assert credit.snapshot(st, NOW)["max_rate_micros_per_min"] == 250_000
    [rep] = res.replies
    assert rep["state"]["max_rate_micros_per_min"] == 1_200_000


def test_defaults_stay_0_80_and_0_40_and_old_states_read_unchanged():
    st, _ = credit.apply_command(None, {"account": "C2", "action": "provision", "credit_micros": 1_000_000}, NOW)
    assert "max_rate_normal_micros" not in st["cfg"]              # stored exactly as before
    assert credit.snapshot(st, NOW)["max_rate_micros_per_min"] == 800_000
    [soft] = credit.apply_charge(st, st["period"], 800_000, NOW, "k1")
    assert soft["max_rate_micros_per_min"] == 400_000


def test_low_above_normal_is_refused():
    with pytest.raises(UserError, match="must not exceed"):
        provision("C3", "1.00", max_rate_normal="0.30", max_rate_low="0.40")
    with pytest.raises(ValueError, match="must not exceed"):
        credit.apply_command(None, {"account": "C3", "action": "provision", "credit_micros": 1,
                                    "max_rate_normal_micros": 300_000, "max_rate_low_micros": 400_000}, NOW)
