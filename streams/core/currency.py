"""Currencies of tariff plans and accounts (issue 10: "a plan and an account in different
currencies is refused").

* A tariff file names its currency once (top-level ``currency: EUR``; absent = EUR, what every
  file shipped so far priced in); every plan of the file has it, and every rated row carries it.
* An account has a currency too. Provisioning without one takes the plan's; provisioning with a
  currency its plan does not price in is **refused** (reply ``invalid_command``), so the mistake
  shows at the command, not at the first bill.
* A plan whose currency changes later (a tariff reload) no longer matches the accounts on it:
  their CDRs are **rejected at rating** with ``currency_mismatch`` (recyclable once the account
  or the plan is fixed), never charged in the wrong money.
* Accounts stored before currencies existed have none and accept the plan's.
"""
from __future__ import annotations

import re

DEFAULT = "EUR"
_CODE = re.compile(r"^[A-Z]{3}$")


def parse(code, what: str = "currency") -> str:
    """An ISO 4217 alphabetic code (three capitals: EUR, USD); ValueError otherwise."""
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError(f"{what} must be a three-letter ISO 4217 code like EUR or USD, not {code!r}")
    return code


def of_document(raw: dict) -> str:
    """The currency of a tariff file (its plans all price in it)."""
    return parse(raw.get("currency") or DEFAULT, "the tariff file's currency")


def plan_currency(book, plan: str) -> str | None:
    """The plan's currency, or None when the book does not have the plan."""
    if book is None or plan not in book.plans:
        return None
    return getattr(book.plan(plan), "currency", DEFAULT)


def mismatch(account_currency: str | None, plan: str, plan_cur: str | None) -> str | None:
    """Why an account cannot be rated or provisioned on a plan, or None when it can."""
    if account_currency and plan_cur and account_currency != plan_cur:
        return f"plan {plan!r} prices in {plan_cur}, the account is billed in {account_currency}"
    return None


def provision(cmd: dict, book) -> dict:
    """A provision command with the account's currency settled: the given one (checked against
    the plan; ValueError refuses the command) or the plan's. Other commands pass unchanged."""
    if cmd.get("action") != "provision":
        return cmd
    given = cmd.get("currency")
    if given is not None:
        parse(given)
    plan = cmd.get("tariff_plan") or "default"
    plan_cur = plan_currency(book, plan)
    why = mismatch(given, plan, plan_cur)
    if why:
        raise ValueError(why)
    if given is None and plan_cur is not None:
        return {**cmd, "currency": plan_cur}
    return cmd


def check(cfg, rating) -> None:
    """At rating: RejectError ``currency_mismatch`` when the rating's plan prices in another
    currency than the account (``cfg``: streams.core.credit.AccountConfig)."""
    from streams.core.reasons import Reason, RejectError

    why = mismatch(getattr(cfg, "currency", None), cfg.tariff_plan, getattr(rating, "currency", "") or None)
    if why:
        raise RejectError(Reason.CURRENCY_MISMATCH, why)
