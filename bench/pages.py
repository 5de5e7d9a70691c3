"""Dashboard page latency on a large history: the incident list (filters; search
apart), incident detail and analytics pages, rendered HTML, for a signed-in owner.

The sibling of ``bench/api.py``, on the same history (made through the worker's own
``persist``; one large tenant and 50 small ones). Pages are requested through the ASGI
app in-process with the browser's session cookie, so the figures are server time
(queries, templates, SVG) without the network. Prints one JSON line per store; progress
on stderr. Not a test.

    .venv/bin/python bench/pages.py [--alerts 1000000] [--store sqlite|postgresql|both]
        [--keep DIR]

``--keep DIR`` is ``bench/api.py``'s: both benches can measure one kept history.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from api import SAMPLES, SERVICES, History, run, timed
from fastapi.testclient import TestClient

from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import IncidentFilter
from dd0c_alert.web.app import create_app
from dd0c_alert.web.passwords import hash_password

EMAIL, PASSWORD = "owner@bench.example", "a long bench passphrase"


def sign_in(runtime: Runtime, client: TestClient, tenant_id: str) -> None:
    accounts = runtime.store.accounts()
    user = accounts.user_by_email(EMAIL) or accounts.create_user(EMAIL, hash_password(PASSWORD))
    accounts.add_member(tenant_id, user.id, "owner")
    client.get("/login")
    answer = client.post(
        "/login",
        data={"csrf_token": client.cookies["dd0c_csrf"], "email": EMAIL, "password": PASSWORD},
        follow_redirects=False,
    )
    if answer.status_code != 303:
        raise SystemExit(f"login: {answer.status_code} {answer.text[:300]}")


def measure(runtime: Runtime, tenant_id: str, rnd: random.Random) -> dict[str, Any]:
    with TestClient(create_app(runtime)) as client:
        sign_in(runtime, client, tenant_id)
        found = runtime.store.list_incidents(tenant_id, IncidentFilter(), 100, None)
        ids = [i["id"] for i in found.items]
        lists = [
            "/incidents",
            "/incidents?status=open",
            f"/incidents?service=svc-{rnd.randrange(SERVICES):03d}",
            "/incidents?severity=critical&since=7d",
        ]
        searches = [f"/incidents?q=svc-{rnd.randrange(SERVICES):03d}" for _ in range(8)]
        searches += ["/incidents?q=team-3", "/incidents?q=check%202"]
        for warm in (lists[0], f"/incidents/{ids[0]}", "/analytics"):
            client.get(warm)  # templates compiled, caches filled
        return {
            "incidents_page": timed(client, [rnd.choice(lists) for _ in range(SAMPLES)], {}),
            "search_page": timed(client, [rnd.choice(searches) for _ in range(SAMPLES // 6)], {}),
            "incident_page": timed(
                client, [f"/incidents/{rnd.choice(ids)}" for _ in range(SAMPLES)], {}
            ),
            **{
                f"analytics_page_{w}": timed(client, [f"/analytics?window={w}"] * 20, {})
                for w in ("7d", "30d", "90d")
            },
        }


def measure_pages(h: History) -> dict[str, Any]:
    return measure(h.runtime, h.tenant_id, random.Random(42))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--keep", type=Path, help="build the history here and keep it")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    for kind in kinds:
        print(json.dumps(run(kind, args.alerts, args.keep, measure_pages)), flush=True)


if __name__ == "__main__":
    main()
