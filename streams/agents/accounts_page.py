"""``GET /accounts``: the read API of ``cdrflow account list`` on the worker's web server.

    GET /accounts?profile=blocked&over_pct=80&period=2026-11   -> 200 {"accounts": [...], "workers": N}

Filters and rows: streams/account_api.py (same records as ``account.state``, plus decimal money
and ``used_pct``). A worker holds only its own partitions of the accounts table, so the worker
asked answers its own and asks every other member of the group (``local=1``: answer your own
only) from the assignor's distribution — the same map Faust's table router forwards by. A
member that does not answer makes the whole request fail (502) rather than return a short list.
Served on ``CDRFLOW_WEB_HOST`` (127.0.0.1 unless configured), JSON only.
"""
from __future__ import annotations

import orjson
from faust.web import Request, Response, View

from streams import account_api as A
from streams import topics
from streams.agents.charge import accounts
from streams.app import app, settings
from streams.core import credit
from streams.core.charge import utc_now_ms
from streams.partitioning import partition_for


def _owned() -> set[int]:
    actives = app.assignor.assigned_actives() if app.assignor else set()
    return {tp.partition for tp in actives if tp.topic == topics.NORMALIZED}


def local_records() -> list[dict]:
    owned, now = _owned(), utc_now_ms()
    out = []
    for key, raw in list(accounts.items()):
        acct = key.decode() if isinstance(key, bytes) else key
        # The memory store may still hold keys of partitions just revoked: answer only owned ones,
        # so no account is listed twice (or stale) during a rebalance.
        if partition_for(acct, settings.partitions) in owned:
            out.append(credit.snapshot(orjson.loads(raw), now))
    return out


def _peers() -> list[str]:
    me = str(app.conf.canonical_url).rstrip("/")
    urls = app.assignor.tables_metadata().keys() if app.assignor else ()
    return sorted({str(u).rstrip("/") for u in urls} - {me})


@app.page("/accounts")
class Accounts(View):
    async def get(self, request: Request) -> Response:
        q = request.query
        try:
            filters = A.Filters.parse(q.get("profile"), q.get("over_pct"), q.get("period"))
        except ValueError as exc:
            return self.web.json({"error": str(exc)}, status=400)
        if app.rebalancing:
            return self.web.json({"error": "rebalancing; ask again in a few seconds"}, status=503)
        records = local_records()
        peers = [] if q.get("local") == "1" else _peers()
        params = {k: q[k] for k in ("profile", "over_pct", "period") if q.get(k)}
        for url in peers:
            try:
                async with app.http_client.get(f"{url}/accounts", params={**params, "local": "1"},
                                               timeout=10) as resp:
                    body = await resp.json()
                    if resp.status != 200:
                        raise RuntimeError(body.get("error", resp.status))
            except Exception as exc:
                return self.web.json({"error": f"worker {url} did not answer: {exc}"}, status=502)
            records.extend(body["accounts"])
        rows = [r if "used_pct" in r else A.row(r) for r in A.select(records, filters)]
        return self.web.json({"accounts": rows, "workers": 1 + len(peers)})
