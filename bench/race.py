"""The race: dd0c/alert against Prometheus Alertmanager, same client, same run.

Alertmanager (Debian's ``prometheus-alertmanager``, in memory, nothing durable) is
what many teams would run instead; dd0c commits every webhook to its durable queue
before answering. Both are driven by ``wrk`` (one thread, the connections given)
with the same alerts, as Alertmanager's own ``POST /api/v2/alerts`` for it and an
Alertmanager v4 webhook for dd0c, in two mixes: ``fresh``, every alert new (a unique
label: every alert a new row for dd0c, a new entry for Alertmanager), and ``spread``,
issue #11's own, 200 services x 50 alert names drawn at random (most alerts repeat a
firing one, as in a real storm). Two legs per mix: single-alert posts at 64
connections, and 100-alert posts at 16. Printed: one JSON line per repetition and mix
with both sides and the dd0c/Alertmanager ratios; progress on stderr. Not a test.

    .venv/bin/python bench/race.py [--seconds 12] [--repeat 2] [--mix fresh|spread|both]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import MARK, Spread, run_wrk, spread_webhook  # noqa: E402
from targets import OwnServer, Target, free_port, log  # noqa: E402

LEGS = {"single": (1, 64), "group100": (100, 16)}
#: ``fresh``: every alert new (a unique label); ``spread``: issue #11's mix, 200
#: services x 50 alert names drawn at random, so most alerts repeat a firing one.
MIXES = ("fresh", "spread")
CONFIG = 'route: {receiver: "null", group_by: ["alertname"]}\nreceivers: [{name: "null"}]\n'


def alertmanager_parts(alerts: int) -> list[str]:
    """``POST /api/v2/alerts`` bodies: ``alerts`` alerts, made unique per request."""
    items = [
        {
            "labels": {
                "alertname": "BenchHighLatency",
                "service": "checkout",
                "severity": "warning",
                "instance": f"{MARK}-{i}",
            },
            "annotations": {"summary": "p99 latency above 500 ms"},
            "generatorURL": "http://prometheus:9090/graph",
        }
        for i in range(alerts)
    ]
    return json.dumps(items, separators=(",", ":")).split(MARK)


def alertmanager_spread() -> Spread:
    """The spread mix as ``POST /api/v2/alerts`` bodies."""
    alert = {
        "labels": {"alertname": "Alert@N@", "service": "svc-@S@", "severity": "@SEV@"},
        "annotations": {"summary": "Alert@N@ on svc-@S@"},
        "generatorURL": "http://prometheus:9090/graph",
    }
    return Spread("[", json.dumps(alert, separators=(",", ":")), "]")


class Alertmanager:
    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dd0c-race-am-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    def start(self) -> str:
        binary = shutil.which("prometheus-alertmanager")
        if binary is None:
            raise SystemExit("apt-get install prometheus-alertmanager wrk")
        (self.workdir / "am.yml").write_text(CONFIG)
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.workdir / 'am.yml'}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{self.port}"
        import httpx  # noqa: PLC0415

        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("alertmanager did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        shutil.rmtree(self.workdir, ignore_errors=True)


def leg_figures(result: Any, alerts: int) -> dict[str, Any]:
    rate = result.requests / result.duration_s
    return {
        "posts_per_s": round(rate),
        "alerts_per_s": round(rate * alerts),
        "p50_ms": round(result.p50_ms, 1),
        "p99_ms": round(result.p99_ms, 1),
        "errors": result.non_2xx + result.socket_errors,
    }


def one_repetition(seconds: int, mix: str) -> dict[str, Any]:
    """Each side on a fresh server (dd0c: a new data folder; Alertmanager: empty)."""
    out: dict[str, Any] = {"mix": mix, "dd0c": {}, "alertmanager": {}, "ratio": {}}
    spread = mix == "spread"
    server = OwnServer()
    target = server.start()
    try:
        for leg, (alerts, connections) in LEGS.items():
            log(f"dd0c {leg} ({mix})")
            result = run_wrk(
                target, target.webhook_url, alerts, connections, seconds, 1,
                spread=spread_webhook() if spread else None,
            )  # fmt: skip
            out["dd0c"][leg] = leg_figures(result, alerts)
    finally:
        server.stop()
    manager = Alertmanager()
    base = manager.start()
    try:
        dummy = Target(base=base, tenant="", secret="none")
        for leg, (alerts, connections) in LEGS.items():
            log(f"alertmanager {leg} ({mix})")
            result = run_wrk(
                dummy, f"{base}/api/v2/alerts", alerts, connections, seconds, 1,
                parts=alertmanager_parts(alerts),
                spread=alertmanager_spread() if spread else None,
            )  # fmt: skip
            out["alertmanager"][leg] = leg_figures(result, alerts)
    finally:
        manager.stop()
    for leg in LEGS:
        ours, theirs = out["dd0c"][leg], out["alertmanager"][leg]
        out["ratio"][leg] = round(ours["alerts_per_s"] / max(1, theirs["alerts_per_s"]), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--mix", choices=[*MIXES, "both"], default="both")
    args = parser.parse_args()
    for n in range(args.repeat):
        for mix in MIXES if args.mix == "both" else [args.mix]:
            result = one_repetition(args.seconds, mix)
            print(json.dumps({"repetition": n + 1, **result}), flush=True)


if __name__ == "__main__":
    main()
