"""The closed list of reject reason codes.

Every input that is not rated and not a duplicate ends in ``cdr.rejected`` with one of these
codes. The list is closed on purpose: dashboards and recycling rules key on it, so a new code
is a documented change, never an ad-hoc string.
"""
from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    BAD_MAGIC = "bad_magic"                  # first byte is neither Confluent magic 0 nor an Avro container
    UNKNOWN_SCHEMA = "unknown_schema"        # schema id not in the registry
    UNDECODABLE = "undecodable"              # Avro body does not decode with the writer schema
    TRAILING_BYTES = "trailing_bytes"        # bytes left after one complete record
    MISSING_FIELD = "missing_field"          # a required field is absent or null
    BAD_FIELD_TYPE = "bad_field_type"        # a field has the wrong type
    INVALID_NUMBER = "invalid_number"        # caller or called number cannot be parsed
    BAD_DURATION = "bad_duration"            # negative, absurd, or inconsistent durations
    END_BEFORE_START = "end_before_start"
    TIME_OUT_OF_RANGE = "time_out_of_range"  # far future or far past
    UNKNOWN_ACCOUNT = "unknown_account"      # account not provisioned (recyclable once it is)
    UNMAPPED_ACCOUNT = "unmapped_account"    # no account code and no account_map rule matches (recyclable)
    OVERSIZE = "oversize"                    # message larger than the configured maximum
    OVERSIZE_FIELD = "oversize_field"        # one string field longer than the configured maximum
    ARRAY_BOMB = "array_bomb"                # container or array claims more items than allowed
    NO_TARIFF = "no_tariff"                  # no tariff plan or destination matches (recyclable)
    UNSUPPORTED_FORMAT = "unsupported_format"
    CURRENCY_MISMATCH = "currency_mismatch"  # the account's plan prices in another currency (recyclable)
    INTERNAL_ERROR = "internal_error"        # charging raised a bug's exception for this input alone (recyclable)


# Codes whose cause can be fixed by an operator, so `cdrflow recycle` re-publishes them by default.
RECYCLABLE = frozenset({Reason.UNKNOWN_ACCOUNT, Reason.UNMAPPED_ACCOUNT, Reason.NO_TARIFF,
                        Reason.CURRENCY_MISMATCH, Reason.INTERNAL_ERROR})

HINTS: dict[Reason, str] = {
    Reason.BAD_MAGIC: "the producer must use the Confluent wire format (magic byte 0 + schema id) or an Avro object container",
    Reason.UNKNOWN_SCHEMA: "register the writer schema, or use an id from schemas/registry.json",
    Reason.UNDECODABLE: "the payload does not match its writer schema; check the producer's schema",
    Reason.TRAILING_BYTES: "the producer appended bytes after the record; send exactly one record per message",
    Reason.MISSING_FIELD: "the switch did not fill a required field; fix the switch export",
    Reason.BAD_FIELD_TYPE: "a field has the wrong type; fix the switch export",
    Reason.INVALID_NUMBER: "the number cannot be read as a phone number in the switch's numbering context",
    Reason.BAD_DURATION: "durations must be 0..max and billsec <= duration",
    Reason.END_BEFORE_START: "the call ends before it starts; check the switch clock and time zone",
    Reason.TIME_OUT_OF_RANGE: "the call time is outside the accepted window; check the switch clock",
    Reason.UNKNOWN_ACCOUNT: "provision the account (cdrflow account create), then run cdrflow recycle",
    Reason.UNMAPPED_ACCOUNT: "add an account_map rule (switch, trunk, DID or caller range) to the sources file, "
                             "restart the workers, then run cdrflow recycle",
    Reason.OVERSIZE: "split the batch into smaller messages",
    Reason.OVERSIZE_FIELD: "a switch field is longer than CDRFLOW_MAX_FIELD_CHARS; fix the switch export or raise the limit",
    Reason.ARRAY_BOMB: "the batch claims more records than allowed; split it",
    Reason.NO_TARIFF: "add the destination or plan to the tariff, then run cdrflow recycle",
    Reason.UNSUPPORTED_FORMAT: "publish a supported record type",
    Reason.CURRENCY_MISMATCH: "give the account a plan in its currency (or fix the tariff file's currency), "
                              "then run cdrflow recycle",
    Reason.INTERNAL_ERROR: "a bug in cdrflow failed on this input; the worker log has the traceback. "
                           "Fix or upgrade the worker, then run cdrflow recycle --reason internal_error",
}


class RejectError(Exception):
    """Raised by pure code when an input must be rejected."""

    def __init__(self, reason: Reason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = f"{detail} ({HINTS[reason]})"
