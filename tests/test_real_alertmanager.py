"""A real Prometheus Alertmanager (Debian's ``prometheus-alertmanager``) configured with
the snippet ``integration create`` prints, sending to a real ``serve``: what users
run, not recorded payloads. Alertmanager is fed as Prometheus feeds it (every firing
alert with an ``endsAt`` a few minutes ahead, renewed; a resolved one re-sent with its
end), and dd0c must end with one occurrence per alert, the latest end each reported,
and one resolved incident. Both modes: each stores the folds its own way."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from cli_serve import cli_json, serving
from servers import free_port
from stand_ins.webhook_receiver import WebhookReceiver
from test_notifications_e2e import wait_until

pytestmark = pytest.mark.both_modes
T = TypeVar("T")
PODS = ("a", "b", "c")
STARTED = "2026-12-07T10:00:00Z"


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@dataclass
class Alertmanager:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def post(self, ends: dict[str, datetime]) -> None:
        """Alerts of pods as Prometheus posts them: one per pod, its end given."""
        httpx.post(
            f"{self.url}/api/v2/alerts", json=pod_alerts(ends), timeout=10
        ).raise_for_status()

    def fingerprints(self) -> dict[str, str]:
        """pod -> Alertmanager's own fingerprint of its alert, as its UI shows it."""
        found = httpx.get(f"{self.url}/api/v2/alerts", timeout=10).json()
        return {a["labels"]["pod"].removeprefix("checkout-"): a["fingerprint"] for a in found}

    def sent(self) -> int:
        """How many notifications this Alertmanager delivered (its own log says)."""
        return self.log.read_text().count('msg="Notify success"')


def pod_alerts(ends: dict[str, datetime]) -> list[dict[str, Any]]:
    return [
        {
            "labels": {
                "alertname": "PodCrashLooping",
                "service": "checkout",
                "severity": "critical",
                "pod": f"checkout-{pod}",
            },
            "annotations": {"summary": "checkout pods crash looping"},
            "startsAt": STARTED,
            "endsAt": iso(end),
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        }
        for pod, end in ends.items()
    ]


@dataclass
class Dd0c:
    """A serve with one tenant and its Alertmanager integration."""

    url: str
    tenant: dict[str, str]
    api: httpx.Client
    #: alertmanager.yml as ``integration create`` printed it, the group timings
    #: shortened (30 s and 5 min are for production).
    config: str


@pytest.fixture
def dd0c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dd0c]:
    with serving(tmp_path, monkeypatch) as server:
        tenant = cli_json("tenant", "create", "acme")
        made = cli_json(
            "integration", "create", "--tenant", tenant["tenant_id"], "--provider", "alertmanager"
        )
        config = made["setup"].replace("group_wait: 30s", "group_wait: 1s")
        config = config.replace("group_interval: 5m", "group_interval: 1s")
        assert "group_wait: 1s" in config and "group_interval: 1s" in config
        auth = {"Authorization": f"Bearer {tenant['api_key']}"}
        with httpx.Client(base_url=server, headers=auth) as api:
            yield Dd0c(server, tenant, api, config)


@contextlib.contextmanager
def running_alertmanager(folder: Path, config: str, *flags: str) -> Iterator[Alertmanager]:
    """Debian's Alertmanager on a free port with ``config``, its data and debug log in
    ``folder``; stopped (continued first, if a test stopped it) however the test ends."""
    binary = shutil.which("prometheus-alertmanager")
    assert binary, "apt-get install prometheus-alertmanager (.ci/run does)"
    folder.mkdir()
    (folder / "alertmanager.yml").write_text(config)
    port = free_port()
    with open(folder / "alertmanager.log", "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'alertmanager.yml'}",
                f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=debug",
                *flags,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/-/ready"), what="alertmanager ready")
        yield Alertmanager(url, folder / "alertmanager.log", process)
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def alertmanager(tmp_path: Path, dd0c: Dd0c) -> Iterator[tuple[Alertmanager, httpx.Client, Path]]:
    """serve, a tenant with an Alertmanager integration, and Alertmanager on its
    snippet."""
    with running_alertmanager(tmp_path / "am", dd0c.config, "--cluster.listen-address=") as am:
        yield am, dd0c.api, am.log


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _three(found: dict[str, T]) -> dict[str, T] | None:
    return found if len(found) == len(PODS) else None


def _alerts(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """pod -> its alert; a pod with two (a resolve stored as a second occurrence)
    fails."""
    items = api.get("/v1/alerts", params={"limit": 100}).json()["items"]
    found = {a["labels"]["pod"].removeprefix("checkout-"): a for a in items}
    assert len(found) == len(items), items
    return found


def test_a_real_alertmanager_fires_resolves_and_repeats_into_one_incident(
    alertmanager: tuple[Alertmanager, httpx.Client, Path],
) -> None:
    am, api, log = alertmanager
    now = datetime.now(UTC)
    ahead = now + timedelta(minutes=5)
    am.post(dict.fromkeys(PODS, ahead))
    fingerprints = wait_until(
        lambda: _three(am.fingerprints()), what="three alerts in alertmanager"
    )
    firing = wait_until(lambda: _three(_alerts(api)), what="three alerts in dd0c")
    assert {a["status"] for a in firing.values()} == {"firing"}
    assert len({a["incident_id"] for a in firing.values()}) == 1

    # Prometheus renews what still fires and resolves pod a; a later evaluation
    # resolves b and c and re-sends a's end, later than the first it reported.
    first_end = datetime.now(UTC)
    am.post({"a": first_end, "b": ahead, "c": ahead})
    wait_until(lambda: _alerts(api)["a"]["status"] == "resolved", what="pod a resolved")
    last_end = datetime.now(UTC)
    am.post(dict.fromkeys(PODS, last_end))
    [incident] = wait_until(
        lambda: [i for i in api.get("/v1/incidents").json()["items"] if i["status"] == "resolved"],
        what="the incident resolved",
    )

    stored = _alerts(api)
    assert sorted(stored) == list(PODS), stored  # one occurrence each, no resolved copy
    assert {a["status"] for a in stored.values()} == {"resolved"}
    assert {a["incident_id"] for a in stored.values()} == {incident["id"]}
    assert incident["alert_count"] == 3
    for pod, alert in stored.items():
        assert alert["started_at"] == STARTED
        # The latest end reported: a's second, b's and c's only one.
        assert datetime.fromisoformat(alert["ended_at"]) == last_end, (pod, alert)
    # Found by the fingerprint Alertmanager shows for it, with or without the prefix.
    for pod, fingerprint in fingerprints.items():
        for spelled in (fingerprint, f"alertmanager:{fingerprint}"):
            found = api.get("/v1/alerts", params={"fingerprint": spelled}).json()["items"]
            assert [a["id"] for a in found] == [stored[pod]["id"]], spelled
    # Every notification Alertmanager sent was taken: none retried, none refused.
    sent = log.read_text()
    assert sent.count('msg="Notify success"') >= 3, sent[-3000:]
    assert "Notify for alerts failed" not in sent and "Notify attempt failed" not in sent


@pytest.fixture
def ha_pair(tmp_path: Path, dd0c: Dd0c) -> Iterator[tuple[Alertmanager, Alertmanager]]:
    """An Alertmanager HA pair on dd0c's snippet, partitioned: each peer alone, as when
    gossip between them is cut (a healthy pair's gossip keeps the second from
    sending: checked, it does even with a 10 ms ``--cluster.peer-timeout``). Both send
    every notification, and Alertmanager documents that HA delivers at least once."""
    with (
        running_alertmanager(tmp_path / "am1", dd0c.config, "--cluster.listen-address=") as one,
        running_alertmanager(tmp_path / "am2", dd0c.config, "--cluster.listen-address=") as two,
    ):
        yield one, two


def test_a_partitioned_ha_pair_that_both_notify_stores_each_alert_once(
    dd0c: Dd0c, ha_pair: tuple[Alertmanager, Alertmanager]
) -> None:
    """Both peers notify the firing group at once, then resolve it one after the other
    (their Prometheus evaluations apart, the second's end later): one occurrence per
    alert counting both notifications, one incident, paged once and resolved once."""
    api, (one, two) = dd0c.api, ha_pair
    with paging(api) as pager:
        ahead = datetime.now(UTC) + timedelta(minutes=5)
        for am in ha_pair:  # Prometheus sends every alert to every Alertmanager
            am.post(dict.fromkeys(PODS, ahead))
        wait_until(lambda: one.sent() and two.sent(), what="both peers notified")
        wait_until(lambda: _fewest_repeats(api) >= 2, what="each alert repeated")
        assert len(_incidents(api)) == 1

        first_end = datetime.now(UTC)
        one.post(dict.fromkeys(PODS, first_end))
        wait_until(lambda: _resolved(api), what="the incident resolved")
        last_end = datetime.now(UTC)
        two.post(dict.fromkeys(PODS, last_end))
        wait_until(lambda: _ends(api) == {last_end}, what="the later end taken")

        [incident] = _incidents(api)
        assert incident["status"] == "resolved" and incident["alert_count"] == 3
        stored = _alerts(api)
        assert sorted(stored) == list(PODS), stored
        assert {a["incident_id"] for a in stored.values()} == {incident["id"]}
        assert {a["status"] for a in stored.values()} == {"resolved"}
        assert _fewest_repeats(api) >= 2  # a firing notification from each peer
        kinds = wait_until(lambda: _resolved_event(pager), what="the page and its resolve")
        assert kinds.count("incident.opened") == 1, kinds
        assert "incident.reopened" not in kinds, kinds
    assert one.sent() >= 2 and two.sent() >= 2  # each peer sent the fire and the resolve


@contextlib.contextmanager
def paging(api: httpx.Client) -> Iterator[WebhookReceiver]:
    """A webhook receiver every incident of the tenant is routed to: the pager."""
    with WebhookReceiver() as pager:
        route = {
            "name": "pager",
            "destinations": [{"type": "webhook", "url": pager.url, "secret": "whsec-pager"}],
        }
        api.post("/v1/routes", json=route).raise_for_status()
        yield pager


def _incidents(api: httpx.Client) -> list[dict[str, Any]]:
    return list(api.get("/v1/incidents").json()["items"])


def _resolved(api: httpx.Client) -> bool:
    return [i["status"] for i in _incidents(api)] == ["resolved"]


def _truncations(api: httpx.Client) -> set[str | None]:
    """The ``dd0c_truncated_alerts`` values the stored alerts carry (None: not cut)."""
    return {a["labels"].get("dd0c_truncated_alerts") for a in _alerts(api).values()}


def _fewest_repeats(api: httpx.Client) -> int:
    """The lowest repeat count of the alerts: at least one a notification that reached
    dd0c. More on a loaded machine: Alertmanager may flush a group before all of one
    post's alerts reached it (group_wait is 1 s here), then notify again with all."""
    return min((a["repeat_count"] for a in _alerts(api).values()), default=0)


def _ends(api: httpx.Client) -> set[datetime | None]:
    ends = (a["ended_at"] for a in _alerts(api).values())
    return {datetime.fromisoformat(end) if end else None for end in ends}


def _resolved_event(pager: WebhookReceiver) -> list[str] | None:
    """The incident event types the pager took, once one says resolved."""
    kinds = [orjson.loads(r.body)["type"] for r in pager.requests if r.answer.startswith("2")]
    return kinds if "incident.resolved" in kinds else None


class LossyProxy:
    """Forwards each request to dd0c and, for the first ``lose`` of them, hangs up
    instead of passing the answer back: dd0c has committed a notification whose
    answer Alertmanager never gets, so Alertmanager sends it again."""

    def __init__(self, target: str) -> None:
        self.target, self.lose, self.lost, self.forwarded = target, 0, 0, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = httpx.post(proxy.target + self.path, content=body, headers=headers)
                proxy.forwarded += 1
                if proxy.lost < proxy.lose:
                    proxy.lost += 1
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def lossy(tmp_path: Path, dd0c: Dd0c) -> Iterator[tuple[Alertmanager, LossyProxy]]:
    """Alertmanager on dd0c's snippet, sending through a LossyProxy."""
    proxy = LossyProxy(dd0c.url)
    proxy.thread.start()
    try:
        config = dd0c.config.replace(f"url: {dd0c.url}/", f"url: {proxy.url}/")
        assert proxy.url in config
        with running_alertmanager(tmp_path / "am", config, "--cluster.listen-address=") as am:
            yield am, proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()


def test_notifications_alertmanager_sends_again_after_a_lost_answer_are_folded(
    dd0c: Dd0c, lossy: tuple[Alertmanager, LossyProxy]
) -> None:
    """The fire reaches dd0c three times (two answers lost), the resolve twice: each
    alert is stored once, its repeat count says how many notifications came, and the
    incident opens, pages and resolves once."""
    api, (am, proxy) = dd0c.api, lossy
    with paging(api) as pager:
        proxy.lose = 2
        am.post(dict.fromkeys(PODS, datetime.now(UTC) + timedelta(minutes=5)))
        wait_until(lambda: am.sent() == 1, 20, "the fire answered")
        assert proxy.forwarded == 3
        wait_until(lambda: _fewest_repeats(api) >= 3, what="each alert repeated")
        proxy.lose, proxy.lost = 1, 0
        end = datetime.now(UTC)
        am.post(dict.fromkeys(PODS, end))
        wait_until(lambda: am.sent() == 2, 20, "the resolve answered")
        assert proxy.forwarded == 5
        kinds = wait_until(lambda: _resolved_event(pager), what="the page and its resolve")

        [incident] = _incidents(api)
        assert incident["status"] == "resolved" and incident["alert_count"] == 3
        stored = _alerts(api)
        assert sorted(stored) == list(PODS), stored
        assert {a["status"] for a in stored.values()} == {"resolved"}
        assert _ends(api) == {end} and _fewest_repeats(api) >= 3
        assert kinds.count("incident.opened") == 1 and "incident.reopened" not in kinds, kinds
    sent = am.log.read_text()  # really sent again: the fire took 3 attempts, the resolve 2
    assert 'msg="Notify success" attempts=3' in sent and "attempts=2" in sent, sent[-3000:]


def test_a_group_cut_by_max_alerts_shows_what_was_sent_and_counts_the_rest(
    tmp_path: Path, dd0c: Dd0c
) -> None:
    """``max_alerts: 2`` with five alerts: Alertmanager sends the first two by label
    order and ``truncatedAlerts: 3``. dd0c stores exactly those two, each marked with
    how many were left out, invents nothing for the three it never saw, and resolves
    what a resolve names (docs/providers.md says why the incident can then resolve
    while alerts Alertmanager left out still fire)."""
    api = dd0c.api
    config = dd0c.config.replace("max_alerts: 0 ", "max_alerts: 2 ")
    assert "max_alerts: 2 " in config
    with running_alertmanager(tmp_path / "am", config, "--cluster.listen-address=") as am:
        ahead = datetime.now(UTC) + timedelta(minutes=5)
        am.post(dict.fromkeys("abcde", ahead))
        # On a loaded machine Alertmanager may flush the group while only a and b have
        # reached it (nothing cut, no label), then again with all five: wait for that.
        shown = wait_until(
            lambda: _truncations(api) == {"3"} and _alerts(api), what="two cut alerts in dd0c"
        )
        assert sorted(shown) == ["a", "b"]
        [incident] = _incidents(api)
        assert incident["alert_count"] == 2

        end = datetime.now(UTC)
        am.post({"a": end, "b": end, "c": ahead, "d": ahead, "e": ahead})
        wait_until(lambda: _ends(api) == {end}, what="the shown alerts resolved")
        assert sorted(_alerts(api)) == ["a", "b"]  # c, d and e: never sent, never made up
        assert am.sent() >= 2
