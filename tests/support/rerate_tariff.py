"""The two-version tariff the rerating tests price with: 0.10/min in v1, 0.25/min from 2027 (v2),
per started minute, so every expected cost is minutes x rate, written out by hand."""

TARIFF = """
format: cdrflow-tariff/1
currency: EUR
plans:
  std:
    timezone: UTC
    versions:
      - version: "v1"
        effective_from: "2026-01-01T00:00:00+00:00"
        rounding: {method: up, decimals: 6, per_increment: false}
        destinations:
          fr: {prefixes: ["33"], groups: [{start: 0, rate: "0.10", unit: 60, increment: 60}]}
      - version: "v2"
        effective_from: "2027-01-01T00:00:00+00:00"
        rounding: {method: up, decimals: 6, per_increment: false}
        destinations:
          fr: {prefixes: ["33"], groups: [{start: 0, rate: "0.25", unit: 60, increment: 60}]}
"""
RATE = {"v1": 100_000, "v2": 250_000}        # micros per started minute
