"""The operator's view of ``dd0c-alert``: help read in an 80-column terminal, and errors
met at bad moments. Each test runs the CLI in its own process, as a person would, on a
fresh embedded data folder."""

from __future__ import annotations

import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

#: Every command group, for the help pages that list commands.
GROUPS = (
    (),
    ("tenant",),
    ("integration",),
    ("slack",),
    ("deliveries",),
    ("routes",),
    ("dlq",),
    ("topology",),
    ("user",),
    ("api-key",),
)


def run(data_dir: Path | None, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``dd0c-alert ARGS`` in an 80-column terminal, with only this data folder."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DD0C_") and k not in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")
    }
    env.update(COLUMNS="80", LINES="50", NO_COLOR="1")
    if data_dir is not None:
        env["DD0C_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "dd0c_alert", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=120,
        check=False,
    )


def _flat(text: str) -> str:
    """Text without rich's box drawing and its line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _command_rows(help_text: str) -> tuple[int, list[list[str]]]:
    """The Commands panel's description width and rows (each description's lines)."""
    panel = help_text.split("─ Commands ─", 1)[1]
    rows: list[list[str]] = []
    column = width = 0
    for line in panel.splitlines()[1:]:
        if not line.startswith("│"):
            break
        inner = line[1:-1]
        named = re.match(r" (\S+)( +)", inner)
        if named:
            column = named.end()
            width = len(inner) - column - 1
            rows.append([inner[column:].strip()])
        else:
            rows[-1].append(inner[column:].strip())
    return width, rows


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: " ".join(g) or "dd0c-alert")
def test_command_lists_flow_their_descriptions_to_the_width(group: tuple[str, ...]) -> None:
    """A description goes on to the next line only when the next word does not fit:
    the docstrings' own line breaks cut "the worker, notifier and scheduled / jobs in
    a child process" mid-sentence in ``dd0c-alert --help``."""
    shown = run(None, *group, "--help")
    assert shown.returncode == 0, shown.stderr
    width, rows = _command_rows(shown.stdout)
    assert rows
    for lines in rows:
        for line, following in itertools.pairwise(lines):
            next_word = following.split()[0]
            assert len(line) + 1 + len(next_word) > width, (
                f"{' '.join(group)} --help breaks early:\n{line}\n{following}"
            )


def test_help_keeps_square_brackets_of_the_file_shape() -> None:
    """Rich markup read "[services it depends on]" as a style tag and dropped it, so
    the help showed the shape as ``{service: }``."""
    shown = run(None, "topology", "import", "--help")
    assert "{service: [services it depends on]}" in _flat(shown.stdout)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed command: one line on stderr, nothing on stdout."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "│" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_database_from_a_newer_version_is_named_by_every_command(data_dir: Path) -> None:
    """Alembic's "Can't locate revision" ended every command in a traceback, and
    doctor told the operator to run `migrate`, which failed the same way."""
    assert run(data_dir, "tenant", "create", "acme").returncode == 0
    with sqlite3.connect(data_dir / "dd0c.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    for command in (("tenant", "list"), ("migrate",), ("dlq", "list")):
        line = _one_line_error(run(data_dir, *command))
        assert "schema is at 9999, newer than this dd0c-alert" in line
        assert "upgrade dd0c-alert" in line
    doctor = run(data_dir, "doctor")
    assert doctor.returncode == 1
    assert "fail  migrations: the database's schema is at 9999, newer" in doctor.stdout
    assert "fix: run that version again (upgrade dd0c-alert)" in doctor.stdout
    assert "dd0c-alert migrate" not in doctor.stdout


def test_a_lost_secret_key_is_named_not_a_traceback(data_dir: Path) -> None:
    """secret.key lost (a copy without it, a volume mounted without it): a new one was
    made, which read none of the stored secrets, and every command reading an
    integration ended in Fernet's word-less InvalidToken traceback. Now a lost key is
    refused at start, and a wrong one is named."""
    tenant = run(data_dir, "tenant", "create", "acme", "--json")
    tenant_id = json.loads(tenant.stdout)["tenant_id"]
    created = run(data_dir, "integration", "create", "--tenant", tenant_id, "--provider", "custom")
    assert created.returncode == 0, created.stderr
    key = data_dir / "secret.key"
    kept = key.read_bytes()
    key.unlink()  # a new key was made, which could read none of the stored secrets
    for command in (("integration", "list", "--tenant", tenant_id), ("tenant", "list")):
        line = _one_line_error(run(data_dir, *command))
        assert f"{key} is missing, but the database holds secrets encrypted with it" in line
        assert "(integrations)" in line and "put back the secret.key of a backup" in line
    assert not key.exists()  # refused, not replaced
    key.write_bytes(Fernet.generate_key())  # another folder's key
    line = _one_line_error(run(data_dir, "integration", "list", "--tenant", tenant_id))
    assert "cannot be decrypted with this key" in line
    assert "the secret.key of your backup" in line
    key.write_bytes(kept)
    assert run(data_dir, "integration", "list", "--tenant", tenant_id).returncode == 0


def test_a_tenant_name_given_for_its_id_is_answered_with_the_id(data_dir: Path) -> None:
    """`--tenant acme` right after `tenant create acme` said only "no tenant 'acme'"."""
    tenant_id = json.loads(run(data_dir, "tenant", "create", "acme", "--json").stdout)["tenant_id"]
    for command in (  # one command of each CLI module: they share the check
        ("integration", "list"),
        ("routes", "list"),
        ("topology", "show"),
    ):
        refused = run(data_dir, *command, "--tenant", "acme")
        assert refused.returncode == 2, (command, refused.stderr)
        said = _flat(refused.stderr)
        assert f"'acme' is the name of tenant {tenant_id}: --tenant takes the id" in said
    unknown = run(data_dir, "integration", "list", "--tenant", "nobody")
    assert "no tenant 'nobody' (dd0c-alert tenant list shows them)" in _flat(unknown.stderr)


def test_an_empty_tenant_list_says_so(data_dir: Path) -> None:
    listed = run(data_dir, "tenant", "list")
    assert listed.returncode == 0
    assert listed.stdout == "no tenants: dd0c-alert tenant create NAME makes one\n"
    assert run(data_dir, "tenant", "list", "--json").stdout == "[]\n"


def test_api_key_times_are_iso_8601_like_the_api(data_dir: Path) -> None:
    """`api-key list --json` wrote ``str(datetime)`` ("2026-12-07 09:50:58+00:00")
    where GET /v1/api-keys writes ISO 8601 ("2026-12-07T09:50:58+00:00")."""
    tenant_id = json.loads(run(data_dir, "tenant", "create", "acme", "--json").stdout)["tenant_id"]
    listed = run(data_dir, "api-key", "list", "--tenant", tenant_id, "--json")
    assert listed.returncode == 0 and listed.stderr == ""
    (key,) = json.loads(listed.stdout)
    assert set(key) == {
        "id",
        "name",
        "scope",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "created_by",
        "created_by_email",
    }
    assert key["created_by"] is None and key["created_by_email"] is None  # no person's
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", key["created_at"])
