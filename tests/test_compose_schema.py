"""docker-compose.yml against the Compose specification's JSON schema (vendored in
deploy/schema), pinned image tags, and the Caddy front kept in step with the services
it proxies to. No container engine needed; `caddy adapt` checks the Caddyfile when
Caddy is installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dd0c_alert.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "deploy" / "schema" / "compose-spec.json"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
#: ``${VAR:-default}`` → default (what an image reference resolves to without .env).
DEFAULTED = re.compile(r"\$\{\w+:?-([^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_follows_the_specification(
    compose: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    assert _errors(validator, compose) == []


def test_the_schema_catches_mistakes(
    compose: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    """The vendored schema is strict enough to be worth running: each mistake alone
    makes the file invalid."""
    mistakes = [
        ("api", lambda spec: spec.update(helthcheck=spec.pop("healthcheck"))),
        ("ingest", lambda spec: spec["deploy"].update(replicas=[2])),
        ("cron", lambda spec: spec["depends_on"]["migrate"].update(condition="service_done")),
        ("caddy", lambda spec: spec.update(ports=[["443"]])),
    ]
    for service, mistake in mistakes:
        broken = json.loads(json.dumps(compose))  # a deep copy without shared anchors
        mistake(broken["services"][service])
        assert _errors(validator, broken), f"{service}: the schema missed a mistake"


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    """An explicit tag on every image, never ``latest``, and one tag per image."""
    seen: dict[str, set[str]] = {}
    for name, spec in compose["services"].items():
        assert "image" in spec, f"{name}: no image"
        image = DEFAULTED.sub(lambda m: m.group(1), str(spec["image"]))
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and not tag.endswith("-latest"), f"{name}: {image}"
        seen.setdefault(repository, set()).add(tag)
    assert all(len(tags) == 1 for tags in seen.values()), seen


def test_the_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "postgres", "redis", "minio", "create-bucket", "migrate",
        "ingest", "correlate", "notify", "api", "cron", "caddy",
    }  # fmt: skip
    assert set(services) == expected
    assert services["ingest"]["deploy"]["replicas"] == 2
    assert 2 <= services["correlate"]["deploy"]["replicas"] <= 3
    assert services["cron"]["deploy"]["replicas"] == 1


def test_only_caddy_is_published(compose: dict[str, Any]) -> None:
    """Webhooks and the API reach the roles through the TLS front only."""
    published = {name for name, spec in compose["services"].items() if spec.get("ports")}
    assert published == {"caddy"}
    ports = " ".join(compose["services"]["caddy"]["ports"])
    assert ":443" in ports and ":80" in ports


def test_caddy_proxies_to_every_ingest_replica_and_the_api(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["caddy"]["environment"]
    ingest_port = services["ingest"]["command"][services["ingest"]["command"].index("--port") + 1]
    replicas = services["ingest"]["deploy"]["replicas"]
    project = compose["name"]
    expected = [f"{project}-ingest-{n}:{ingest_port}" for n in range(1, replicas + 1)]
    assert env["DD0C_INGEST_UPSTREAMS"].split() == expected
    api_port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    assert env["DD0C_API_UPSTREAMS"].split() == [f"api:{api_port}"]
    assert set(services["caddy"]["depends_on"]) == {"ingest", "api"}
    mounts = services["caddy"]["volumes"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in mounts


def test_caddyfile_limits_match_the_application() -> None:
    text = CADDYFILE.read_text(encoding="utf-8")
    assert Settings().max_body_bytes == 1024 * 1024
    assert "max_size {$DD0C_WEBHOOK_MAX_BODY:1MiB}" in text
    assert "max_size {$DD0C_API_MAX_BODY:1MiB}" in text
    assert "handle /v1/wh/*" in text
    assert "tls {$DD0C_TLS:internal}" in text


def _adapt(tmp_path: Path, **env: str) -> dict[str, Any]:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (apt-get install caddy)")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "CADDY_"))}
    result = subprocess.run(
        [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={**base, "HOME": str(home), "XDG_DATA_HOME": str(home), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def _proxies(config: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("handler") == "reverse_proxy":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def test_caddyfile_adapts_with_the_compose_defaults(tmp_path: Path) -> None:
    config = _adapt(tmp_path)
    ingest, api = _proxies(config)
    assert [u["dial"] for u in ingest["upstreams"]] == ["ingest:8080"]
    assert [u["dial"] for u in api["upstreams"]] == ["api:8081"]
    assert ingest["health_checks"]["active"]["uri"] == "/readyz"
    server = config["apps"]["http"]["servers"]["srv0"]
    assert server["listen"] == [":443"]
    policies = config["apps"]["tls"]["automation"]["policies"]
    assert policies[0]["issuers"][0]["module"] == "internal"


def test_caddyfile_with_a_domain_and_acme(tmp_path: Path) -> None:
    config = _adapt(
        tmp_path,
        DD0C_SITE_ADDRESS="alerts.example.com",
        DD0C_TLS="ops@example.com",
        DD0C_INGEST_UPSTREAMS="10.0.0.1:8080 10.0.0.2:8080 10.0.0.3:8080",
    )
    ingest, _ = _proxies(config)
    assert len(ingest["upstreams"]) == 3
    policies = config["apps"]["tls"]["automation"]["policies"]
    assert policies[0]["subjects"] == ["alerts.example.com"]
    assert all(issuer["module"] in ("acme", "zerossl") for issuer in policies[0]["issuers"])
    assert {issuer.get("email") for issuer in policies[0]["issuers"]} == {"ops@example.com"}
