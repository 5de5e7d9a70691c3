"""install.sh and upgrade.sh, run for real against a stub ``docker`` on PATH that
records every call (and what was piped to it) and answers like docker compose: the
order of the calls, the generated .env (every secret present, mode 600, never
overwritten), the owner's password kept off command lines, and shellcheck."""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("install.sh", "upgrade.sh")
SECRETS = (
    "POSTGRES_PASSWORD",
    "OWNER_DB_PASSWORD",
    "APP_DB_PASSWORD",
    "DD0C_SECRET_KEY",
    "DD0C_JWT_SECRET",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
)

STUB = r"""#!/usr/bin/env bash
# A stand-in for docker: one line per call in $DOCKER_CALLS, stdin kept when piped.
printf '%s\n' "$*" >>"$DOCKER_CALLS"
if [[ ! -t 0 && "$*" == *"--password-stdin"* ]]; then
  cat >>"$DOCKER_STDIN"
fi
case "$*" in
  "compose version") echo "Docker Compose version v2.29.7" ;;
  "compose ps --format"*)
    n=$(cat "$DOCKER_STATE" 2>/dev/null || echo 0)
    echo $((n + 1)) >"$DOCKER_STATE"
    if ((n == 0)); then echo "api starting"; fi
    for s in postgres redis minio ingest ingest correlate correlate correlate notify cron caddy; do
      echo "$s healthy"
    done
    ((n == 0)) || echo "api healthy"
    ;;
  "compose run --rm -T api tenant create"*)
    echo '{"tenant_id": "t_0123456789", "api_key": "dd0c_key_abcdef"}' ;;
  "compose run --rm -T api user create"*) echo "user created" ;;
  "compose exec -T postgres pg_dump"*) printf 'PGDMP fake dump\n' ;;
esac
exit 0
"""


def _stub_path(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(STUB)
    docker.chmod(0o755)
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed by install.sh"
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DOCKER_CALLS": str(tmp_path / "calls"),
        "DOCKER_STDIN": str(tmp_path / "stdin"),
        "DOCKER_STATE": str(tmp_path / "state"),
    }


@pytest.fixture
def install_dir(tmp_path: Path) -> Path:
    """A copy of what an operator has: the scripts beside docker-compose.yml."""
    target = tmp_path / "dd0c-alert"
    target.mkdir()
    for name in (*SCRIPTS, "docker-compose.yml"):
        shutil.copy2(ROOT / name, target / name)
    return target


def _run(install_dir: Path, env: dict[str, str], script: str, *args: str) -> str:
    result = subprocess.run(
        ["bash", str(install_dir / script), *args],
        env={**env, "DD0C_INSTALL_TIMEOUT": "30"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _calls(env: dict[str, str]) -> list[str]:
    path = Path(env["DOCKER_CALLS"])
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def _env_file(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    )


def test_install_writes_secrets_starts_waits_and_creates_the_owner(
    install_dir: Path, tmp_path: Path
) -> None:
    env = _stub_path(tmp_path)
    out = _run(
        install_dir,
        env,
        "install.sh",
        "--domain",
        "alerts.example.com",
        "--acme-email",
        "ops@example.com",
        "--owner-email",
        "owner@example.com",
        "--tenant",
        "acme",
    )
    calls = _calls(env)
    assert calls[0] == "compose version"
    assert calls[1] == "compose up -d --build"
    polls = [c for c in calls if c.startswith("compose ps")]
    assert len(polls) == 2, "waited until api was healthy too"
    tenant = calls.index("compose run --rm -T api tenant create acme --json")
    user = calls.index(
        "compose run --rm -T api user create --tenant t_0123456789 --email owner@example.com"
        " --role owner --password-stdin"
    )
    assert calls.index(polls[-1]) < tenant < user

    dotenv = install_dir / ".env"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    values = _env_file(dotenv)
    for key in SECRETS:
        assert len(values[key]) >= 16, key
    assert len({values[k] for k in SECRETS}) == len(SECRETS), "secrets must differ"
    assert len(base64.urlsafe_b64decode(values["DD0C_SECRET_KEY"])) == 32  # a Fernet key
    for key in ("POSTGRES_PASSWORD", "OWNER_DB_PASSWORD", "APP_DB_PASSWORD"):
        assert re.fullmatch(r"[0-9a-f]+", values[key]), f"{key} must be URL-safe"
    assert values["DD0C_SITE_ADDRESS"] == "alerts.example.com"
    assert values["DD0C_TLS"] == "ops@example.com"
    assert values["DD0C_PUBLIC_URL"] == "https://alerts.example.com"

    password = Path(env["DOCKER_STDIN"]).read_text().strip()
    assert len(password) >= 16
    assert not any(password in call for call in calls), "the password leaked into argv"
    assert password in out and "dd0c_key_abcdef" in out
    assert "https://alerts.example.com/" in out
    assert stat.S_IMODE((install_dir / ".dd0c-install").stat().st_mode) == 0o600


def test_install_again_keeps_env_and_does_not_recreate_the_owner(
    install_dir: Path, tmp_path: Path
) -> None:
    env = _stub_path(tmp_path)
    _run(install_dir, env, "install.sh")
    first = (install_dir / ".env").read_bytes()
    assert _env_file(install_dir / ".env")["DD0C_TLS"] == "internal"
    _calls(env)
    out = _run(install_dir, env, "install.sh", "--domain", "other.example.com")
    assert (install_dir / ".env").read_bytes() == first
    assert "Keeping the existing .env" in out
    calls = _calls(env)
    assert "compose up -d --build" in calls
    assert not [c for c in calls if "tenant create" in c or "user create" in c]
    assert "https://localhost/" in out


def test_install_refuses_without_prerequisites(install_dir: Path, tmp_path: Path) -> None:
    env = _stub_path(tmp_path)
    (tmp_path / "bin" / "docker").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    # Only bash's own needs: no docker anywhere on PATH.
    for tool in ("dirname", "cat", "sed"):
        found = shutil.which(tool)
        assert found
        os.symlink(found, empty / tool)
    result = subprocess.run(
        ["/bin/bash", str(install_dir / "install.sh")],
        env={**env, "PATH": str(empty)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "docker is not installed" in result.stderr
    assert not (install_dir / ".env").exists()


def test_upgrade_backs_up_migrates_once_then_restarts_in_order(
    install_dir: Path, tmp_path: Path
) -> None:
    env = _stub_path(tmp_path)
    (install_dir / ".env").write_text("POSTGRES_PASSWORD=x\n")
    _run(install_dir, env, "upgrade.sh")
    calls = _calls(env)
    dump = calls.index("compose exec -T postgres pg_dump -U postgres -d dd0c --format=custom")
    pull = calls.index("compose pull --ignore-buildable")
    build = calls.index("compose build")
    migrations = [i for i, c in enumerate(calls) if c == "compose run --rm migrate"]
    assert len(migrations) == 1
    restarts = [c.split()[-1] for c in calls if c.startswith("compose up -d --no-deps --wait")]
    assert restarts == ["correlate", "notify", "cron", "api", "ingest", "caddy"]
    first_restart = calls.index("compose up -d --no-deps --wait correlate")
    assert dump < pull < build < migrations[0] < first_restart
    [backup] = (install_dir / "backups").iterdir()
    assert backup.read_text() == "PGDMP fake dump\n"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600


def test_upgrade_refuses_without_an_install(install_dir: Path, tmp_path: Path) -> None:
    env = _stub_path(tmp_path)
    result = subprocess.run(
        ["bash", str(install_dir / "upgrade.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "install first" in result.stderr
    assert not [c for c in _calls(env) if "pg_dump" in c or "migrate" in c]


@pytest.mark.parametrize("script", [*SCRIPTS, ".ci/run"])
def test_shellcheck_clean(script: str) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, "--shell=bash", str(ROOT / script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
