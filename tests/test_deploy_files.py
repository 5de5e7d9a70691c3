"""Static checks of the container files (no Docker engine needed): the compose roles
are real CLI commands, their settings are real Settings fields, the dependency graph
holds together, and the image installs exactly the lock. The PostgreSQL init script
runs for real against the test cluster."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from cryptography.fernet import Fernet

from dd0c_alert.app import migrate
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.storage.s3_archive import S3Archive
from servers import APP, OWNER, PG_BIN, PostgresServer

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
INIT_SQL = ROOT / "deploy" / "postgres-init.sql"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
#: The roles design §1 runs as one service each (plus the one-shot migration).
ROLES = {"migrate", "ingest", "correlate", "notify", "api", "cron"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
#: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` (compose interpolation).
PLACEHOLDER = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _own_image(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services running the dd0c-alert image (those that build it)."""
    return {name: spec for name, spec in services.items() if "build" in spec}


def _role_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """dd0c-alert services that run a sub-command through the image's entrypoint."""
    return {n: s for n, s in _own_image(services).items() if "entrypoint" not in s}


def _one_shot(spec: dict[str, Any]) -> bool:
    return spec.get("restart") == "no"


def _setting_env_names() -> set[str]:
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(f"DD0C_{field_name}".upper())
        else:
            names.update(str(choice).upper() for choice in getattr(alias, "choices", [alias]))
    return names


#: Dummies that must have the right shape: the settings check the secret key at start.
_DUMMIES = {"DD0C_SECRET_KEY": Fernet.generate_key().decode()}


def _interpolate(text: str) -> str:
    """Compose's substitution with every required variable set to a dummy value."""

    def value(match: re.Match[str]) -> str:
        operator, default = match.group(2), match.group(3)
        return default if operator in (":-", "-") else _DUMMIES.get(match.group(1), "x")

    return PLACEHOLDER.sub(value, text)


def test_every_role_is_a_cli_command(services: dict[str, dict[str, Any]]) -> None:
    commands = set(typer.main.get_command(app).commands)
    roles = _role_services(services)
    used = {spec["command"][0] for spec in roles.values()}
    assert used <= commands, f"compose runs unknown sub-commands: {used - commands}"
    assert used >= ROLES, f"roles without a service: {ROLES - used}"


def test_env_vars_are_settings(services: dict[str, dict[str, Any]]) -> None:
    known = _setting_env_names()
    for name, spec in _own_image(services).items():
        for key in spec.get("environment", {}):
            if key.startswith("DD0C_") or key in ("DATABASE_URL", "REDIS_URL"):
                assert key.upper() in known, f"{name}: {key} is no Settings field"


def test_role_environment_parses(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defaults and dummy secrets give valid Settings; the archive URL parses."""
    for key in list(os.environ):
        if key.startswith("DD0C_") or key in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(key)
    for key, value in services["correlate"]["environment"].items():
        monkeypatch.setenv(key, _interpolate(str(value)))
    settings = Settings()
    assert settings.database_url.startswith("postgresql://dd0c_app:")
    assert settings.secret_key
    assert S3Archive.from_url(settings.archive_url, endpoint_url=settings.s3_endpoint_url)


def test_dependencies_exist_with_valid_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        for target, how in spec.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert how["condition"] in CONDITIONS, f"{name} -> {target}: {how}"
            if how["condition"] == "service_completed_successfully":
                assert _one_shot(services[target]), f"{target} is awaited but not a one-shot"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"


def test_roles_wait_for_the_migration(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in _role_services(services).items():
        if name != "migrate":
            condition = spec["depends_on"]["migrate"]["condition"]
            assert condition == "service_completed_successfully", name


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        assert _one_shot(spec) or "healthcheck" in spec, f"{name}: no healthcheck"


def test_http_healthchecks_probe_the_port_the_role_listens_on(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("ingest", "api", "correlate", "notify", "cron"):
        command = services[name]["command"]
        port = command[command.index("--port") + 1]
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in probe, name


def test_scaling(services: dict[str, dict[str, Any]]) -> None:
    assert services["ingest"]["deploy"]["replicas"] >= 2
    assert services["correlate"]["deploy"]["replicas"] >= 2
    assert services["cron"]["deploy"]["replicas"] == 1  # scheduled jobs run once


def test_only_the_migration_has_the_owner_url(services: dict[str, dict[str, Any]]) -> None:
    """Roles given the owner's URL would migrate on start, and hold rights they must not."""
    for name, spec in _own_image(services).items():
        has_owner = "DD0C_MIGRATION_DATABASE_URL" in spec.get("environment", {})
        assert has_owner == (name == "migrate"), name


def test_required_variables_are_in_env_example() -> None:
    required = {
        m.group(1)
        for m in PLACEHOLDER.finditer(COMPOSE.read_text(encoding="utf-8"))
        if m.group(2) in (":?", "?")
    }
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    listed = set(re.findall(r"^#?\s*(\w+)=", example, flags=re.MULTILINE))
    assert required <= listed, f"missing from deploy/.env.example: {required - listed}"


def test_dockerfile_installs_exactly_the_lock() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    make_uv = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", makefile, flags=re.MULTILINE)
    docker_uv = re.search(r"^ARG UV_VERSION=(\S+)", dockerfile, flags=re.MULTILINE)
    assert make_uv and docker_uv
    assert docker_uv.group(1) == make_uv.group(1)
    assert re.search(r"^COPY .*\buv\.lock\b", dockerfile, flags=re.MULTILINE)
    assert "uv sync --frozen --no-dev" in dockerfile
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, flags=re.MULTILINE)
    user = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["dd0c-alert"]' in dockerfile


# --- deploy/postgres-init.sql, run for real -----------------------------------------------


def _run_init(server: PostgresServer, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(PG_BIN / "psql"),
            *("-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-d", "postgres"),
            *("-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-q", "-f", str(INIT_SQL)),
        ],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def init_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The variables compose hands the postgres container for the init script."""
    keys = [k for k in services["postgres"]["environment"] if k != "POSTGRES_PASSWORD"]
    return {key: f"pw-{key.lower()}" for key in keys}


@pytest.fixture
def deploy_db(pg_server: PostgresServer) -> Iterator[PostgresServer]:
    yield pg_server
    pg_server.drop_database("dd0c")


def test_init_sql_then_migrate(deploy_db: PostgresServer, init_env: dict[str, str]) -> None:
    server = deploy_db
    for _ in range(2):  # safe to run again
        result = _run_init(server, init_env)
        assert result.returncode == 0, result.stderr
    with server.connect("postgres", "postgres") as conn:
        roles = {
            name: flags
            for name, *flags in conn.execute(
                "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles"
                " WHERE rolname IN (%s, %s)",
                (OWNER, APP),
            ).fetchall()
        }
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'dd0c'"
        ).fetchone()
    assert roles == {OWNER: [False, False, True], APP: [False, False, True]}
    assert owner == (OWNER,)

    urls = {
        "database_url": server.url("dd0c", APP),
        "migration_database_url": server.url("dd0c", OWNER),
    }
    migrate(Settings().model_copy(update=urls))
    with server.connect("dd0c", APP) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
        with pytest.raises(Exception, match="permission denied"):
            conn.execute("CREATE TABLE intruder (id int)")


def test_init_sql_refuses_missing_password(
    deploy_db: PostgresServer, init_env: dict[str, str]
) -> None:
    init_env.pop("APP_DB_PASSWORD")
    result = _run_init(deploy_db, init_env)
    assert result.returncode != 0
    assert "syntax error" in result.stderr
