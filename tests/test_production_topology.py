"""The production topology of docker-compose.yml, run natively (no container engine can
pull images here): PostgreSQL (pgmq), Redis, an S3 stand-in (moto), the one-shot
`dd0c-alert migrate` as the owner role, two ingest, two correlate, notify, api and
cron as real processes, and Caddy with deploy/Caddyfile itself (its own local CA) in
front. Webhooks go in over https through Caddy; the incident is read back through
Caddy with the tenant's API key and is posted to the Slack stand-in."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from cryptography.fernet import Fernet
from moto.server import ThreadedMotoServer

from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from servers import APP, OWNER, PostgresServer, RedisServer, free_port
from stand_ins.slack_api import SlackStandIn

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CADDYFILE = ROOT / "deploy" / "Caddyfile"
CLI = Path(sys.executable).parent / "dd0c-alert"
CADDY = shutil.which("caddy")
TOKEN = "xoxb-topology-token-0123456789"
SECRET = "topology-webhook-secret"
BUCKET = "dd0c-archive"


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class Topology:
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.logs / f"{name}.log", "ab") as out:
            self.processes[name] = subprocess.Popen(
                args,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def role(self, name: str, role: str) -> None:
        self.ports[name] = free_port()
        self.start(name, [str(CLI), role, "--host", "127.0.0.1", "--port", str(self.ports[name])])
        self.roles[name] = role

    def listening(self) -> None:
        """Wait until every role listens. ``free_port`` closes the port it found, so
        another socket (an outgoing connection's local port) can take it before the
        role binds it, as seen once on a loaded machine: such a role, which exits
        saying it cannot listen, starts again on another port, up to twice."""
        for name, role in self.roles.items():
            for _ in range(3):
                process = self.processes[name]
                wait_until(
                    lambda p=process, port=self.ports[name]: p.poll() is not None or _accepts(port),
                    60,
                    f"{name} to listen",
                )
                if process.poll() is None:
                    break
                assert "cannot listen" in self.log(name), f"{name} exited:\n{self.log(name)}"
                self.role(name, role)
            else:
                raise AssertionError(f"{name} found no free port:\n{self.log(name)}")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def ready(self, name: str) -> bool:
        process = self.processes[name]
        assert process.poll() is None, f"{name} exited:\n{self.log(name)}"
        try:
            url = f"http://127.0.0.1:{self.ports[name]}/readyz"
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} died:\n{self.log(name)}"

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()


@pytest.fixture
def s3() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    try:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def database(pg_server: PostgresServer) -> Iterator[str]:
    """An empty database owned by the owner role: `migrate` builds the schema."""
    name = f"dd0c_topology_{os.getpid()}"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    yield name
    pg_server.drop_database(name)


def _alertmanager(alertname: str, fingerprint: str) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    labels = {"alertname": alertname, "service": "checkout", "severity": "critical"}
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="' + alertname + '"}',
            "status": "firing",
            "receiver": "dd0c",
            "groupLabels": {"alertname": alertname},
            "commonLabels": labels,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {"summary": f"{alertname} on checkout"},
                    "startsAt": now,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.example/graph",
                    "fingerprint": fingerprint,
                }
            ],
        }
    ).encode()


@pytest.mark.skipif(CADDY is None, reason="caddy is not installed (apt-get install caddy)")
@pytest.mark.timeout(120)
def test_webhooks_over_tls_through_caddy_become_a_notified_incident(
    pg_server: PostgresServer, database: str, s3: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    assert CADDY is not None
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    logs = tmp_path / "logs"
    logs.mkdir()
    secret_key = Fernet.generate_key().decode()
    jwt_secret = Fernet.generate_key().decode()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "AWS_"))}
    with SlackStandIn((TOKEN,)) as slack:
        env = {
            **base,
            "DATABASE_URL": pg_server.dsn(database, APP),
            "REDIS_URL": redis.url,
            "DD0C_SECRET_KEY": secret_key,
            "DD0C_JWT_SECRET": jwt_secret,
            "DD0C_DATA_DIR": str(tmp_path / "data"),
            "DD0C_ARCHIVE_URL": f"s3://{BUCKET}/raw",
            "DD0C_S3_ENDPOINT_URL": s3,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "DD0C_SLACK_API_URL": slack.base_url,
            "DD0C_LOG_LEVEL": "warning",
            "DD0C_WORKER_POLL_SECONDS": "0.05",
            "DD0C_NOTIFY_POLL_SECONDS": "0.1",
            "DD0C_NOTIFY_COALESCE_SECONDS": "0.5",
        }
        topology = Topology(env, logs)
        try:
            # The one-shot migration, as the owner, exactly as the compose `migrate` service.
            migrated = subprocess.run(
                [str(CLI), "migrate"],
                env={**env, "DD0C_MIGRATION_DATABASE_URL": pg_server.dsn(database, OWNER)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert migrated.returncode == 0, migrated.stdout + migrated.stderr

            for name, role in [
                ("ingest-1", "ingest"),
                ("ingest-2", "ingest"),
                ("correlate-1", "correlate"),
                ("correlate-2", "correlate"),
                ("notify", "notify"),
                ("api", "api"),
                ("cron", "cron"),
            ]:
                topology.role(name, role)
            topology.listening()  # before Caddy is told their ports

            home = tmp_path / "caddy-home"
            home.mkdir()
            https_port = free_port()
            topology.start(
                "caddy",
                [CADDY, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                env={
                    "HOME": str(home),
                    "XDG_DATA_HOME": str(home / "data"),
                    "XDG_CONFIG_HOME": str(home / "config"),
                    "DD0C_SITE_ADDRESS": f"https://127.0.0.1:{https_port}",
                    "DD0C_TLS": "internal",
                    "DD0C_INGEST_UPSTREAMS": " ".join(
                        f"127.0.0.1:{topology.ports[n]}" for n in ("ingest-1", "ingest-2")
                    ),
                    "DD0C_API_UPSTREAMS": f"127.0.0.1:{topology.ports['api']}",
                    "CADDY_ADMIN": "off",
                    "CADDY_HTTP_PORT": str(free_port()),
                    "CADDY_HTTPS_PORT": str(https_port),
                },
            )

            # The tenant, its integration, API key and Slack settings, as an admin would
            # (tests/test_scale_out.py does the same), against the same database.
            runtime = build_runtime(
                Settings(
                    database_url=env["DATABASE_URL"],
                    secret_key=secret_key,
                    jwt_secret=jwt_secret,
                    data_dir=tmp_path / "admin",
                ),
                roles=frozenset(),
            )
            tenant = runtime.store.create_tenant("acme")
            runtime.store.create_integration(tenant.id, "alertmanager", "am", SECRET)
            api_key = runtime.store.create_api_key(tenant.id, "topology")
            runtime.notify_settings.put_slack(
                tenant.id, bot_token=TOKEN, signing_secret="signing", default_channel="#oncall"
            )
            runtime.notify_settings.save_route(
                tenant.id,
                {"name": "everything", "destinations": [{"type": "slack", "channel": "#oncall"}]},
            )

            for name in [n for n in topology.ports]:
                wait_until(lambda n=name: topology.ready(n), 45, f"{name} /readyz")
            root_ca = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
            wait_until(root_ca.exists, 20, "Caddy's local CA")
            trust = ssl.create_default_context(cafile=str(root_ca))
            front = f"https://127.0.0.1:{https_port}"

            with httpx.Client(base_url=front, verify=trust, timeout=10) as client:

                def through_caddy() -> bool:
                    topology.alive()
                    try:
                        return client.get("/readyz").status_code == 200
                    except httpx.TransportError:
                        return False

                wait_until(through_caddy, 20, "the api through Caddy")

                # Webhooks over TLS (verified against Caddy's own root), round robin over
                # the two ingest processes.
                webhook = f"/v1/wh/{tenant.id}/alertmanager"
                headers = {"Authorization": f"Bearer {SECRET}"}
                accepted = set()
                for n in range(4):
                    body = _alertmanager(f"CheckoutLatency{n % 2}", f"fp-{n % 2}")
                    # A sender retries a 503 (seen once under CPU contention: an
                    # upstream briefly marked unhealthy); anything else is final.
                    for _ in range(5):
                        response = client.post(webhook, content=body, headers=headers)
                        if response.status_code != 503:
                            break
                        time.sleep(1)
                    assert response.status_code == 202, (response.status_code, response.text)
                    assert response.headers["strict-transport-security"]
                    accepted.add(response.json()["event_id"])
                assert len(accepted) == 4

                # An oversized webhook is refused: Caddy cuts the body at its 1 MiB cap
                # (413 from ingest's own cap, or 502 when Caddy 2.6 stops streaming
                # first); either way nothing is accepted.
                too_big = client.post(webhook, content=b"x" * (1024 * 1024 + 1), headers=headers)
                assert too_big.status_code in (413, 502), too_big.text

                auth = {"Authorization": f"Bearer {api_key}"}

                def incidents() -> list[dict[str, Any]]:
                    topology.alive()
                    response = client.get("/v1/incidents", headers=auth)
                    assert response.status_code == 200, response.text
                    items: list[dict[str, Any]] = response.json()["items"]
                    return items

                found = wait_until(incidents, 30, "the incident through the API")
                assert client.get("/v1/incidents").status_code == 401

            posts = wait_until(
                lambda: slack.calls_of("chat.postMessage"), 30, "the Slack notification"
            )
            assert posts[0].token == TOKEN
            assert slack.messages("#oncall")
            text = json.dumps([call.args for call in posts])
            assert "CheckoutLatency" in text or found[0]["id"] in text

            # Both ingest processes took webhooks (Caddy balanced them).
            for name in ("ingest-1", "ingest-2"):
                metrics = httpx.get(f"http://127.0.0.1:{topology.ports[name]}/metrics").text
                taken = [
                    line
                    for line in metrics.splitlines()
                    if line.startswith("dd0c_webhooks") and "accepted" in line
                ]
                assert taken and any(not line.endswith(" 0.0") for line in taken), name

            # The raw payloads went to the S3 archive.
            objects = boto3.client(
                "s3",
                endpoint_url=s3,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ).list_objects_v2(Bucket=BUCKET)
            assert objects.get("KeyCount", 0) >= 1
            topology.alive()
        finally:
            topology.stop_all()
            redis.stop()
    assert time.monotonic() - started < 90
