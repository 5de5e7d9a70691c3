"""The servers a benchmark drives, and what their processes cost.

``OwnServer`` is a ``dd0c-alert serve`` on a temporary data folder; ``ProductionCluster``
the production roles on a local PostgreSQL (fsync on) and Redis from the Debian
binaries (``tests/servers.py``). Both hand back a ``Target``: where to post, as whom,
and which processes to read CPU and memory from.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Target:
    base: str
    tenant: str
    secret: str
    integration: str | None = None
    api_key: str | None = None
    pid: int | None = None  # only when the bench started the server
    db_path: Path | None = None
    #: production mode: every ingest process's base URL (``base`` is the first), the
    #: pids of all role processes, and the owner DSN to count stored alerts with
    bases: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    owner_dsn: str | None = None
    api_base: str | None = None  # the ``api`` process, where it is not the ingest one
    #: production mode: role -> pids, PostgreSQL's postmaster and Redis included, for
    #: the CPU each spends per request (what a process more of one role would need)
    roles: dict[str, list[int]] = field(default_factory=dict)

    @property
    def webhook_url(self) -> str:
        return self.webhook_url_at(self.base)

    def webhook_url_at(self, base: str) -> str:
        path = f"/v1/wh/{self.tenant}/alertmanager"
        return base + path + (f"/{self.integration}" if self.integration else "")

    @property
    def all_pids(self) -> list[int]:
        """Every server process: ``serve`` counts with its background child."""
        if self.pids:
            return self.pids
        return [] if self.pid is None else [self.pid, *child_pids(self.pid)]


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    base: str,
    proc: subprocess.Popen[bytes] | None = None,
    log_tail: Callable[[], str] = lambda: "",
) -> None:
    """Until ``base`` answers /healthz (30 s at most), or ``proc`` exits."""
    deadline = time.monotonic() + 30
    while True:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited at start:\n{log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{base} not healthy after 30 s:\n{log_tail()}")
        time.sleep(0.1)


def bench_tenant(
    cli_json: Callable[..., dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A tenant and an Alertmanager integration, made with the CLI (``--json``)."""
    secret = secrets.token_urlsafe(24)
    tenant = cli_json("tenant", "create", "bench")
    integration = cli_json(
        "integration", "create", "--tenant", tenant["tenant_id"],
        "--provider", "alertmanager", "--secret", secret,
    )  # fmt: skip
    return tenant, integration, secret


@dataclass
class OwnServer:
    """A ``dd0c-alert serve`` subprocess on a temporary data directory."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dd0c-bench-")))
    proc: subprocess.Popen[bytes] | None = None
    #: Where to copy the server's log when it stops (the data directory is removed).
    keep_log: Path | None = None

    def _cli(self) -> str:
        cli = Path(sys.executable).with_name("dd0c-alert")
        if not cli.exists():
            raise SystemExit(f"{cli} not found: run the bench with the project's .venv python")
        return str(cli)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.pop("DD0C_DATABASE_URL", None)
        env["DD0C_DATA_DIR"] = str(self.workdir / "data")
        return env

    def _json(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [self._cli(), *args, "--json"], env=self._env(), check=True, capture_output=True
        )
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def start(self) -> Target:
        tenant, integration, secret = bench_tenant(self._json)
        port = free_port()
        logfile = (self.workdir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [self._cli(), "serve", "--port", str(port)],
            env=self._env(),
            stdout=logfile,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, self.proc, self.log_tail)
        log(f"server pid {self.proc.pid} on {base}, data in {self.workdir}")
        return Target(
            base=base,
            tenant=tenant["tenant_id"],
            secret=secret,
            integration=integration["integration_id"],
            api_key=tenant["api_key"],
            pid=self.proc.pid,
            db_path=self.workdir / "data" / "dd0c.db",
        )

    def log_tail(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.keep_log is not None and (self.workdir / "server.log").exists():
            shutil.copyfile(self.workdir / "server.log", self.keep_log)
            log(f"server log kept in {self.keep_log}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.workdir.exists():
            log(f"could not remove {self.workdir}")


class CpuCap:
    """A CPU-time cap on some processes: a cgroup with a CFS quota (root, Linux; the
    ``cpu`` controller of cgroup v2, else v1's). On a machine without spare cores it
    stands in for "a core of its own": with each ingest process capped at a fraction
    of a core and the rest of the machine left for the others, what a second capped
    process adds is what a second core would add to an uncapped one, scaled down."""

    PERIOD_US = 10_000

    def __init__(self, name: str, cores: float) -> None:
        v2 = Path("/sys/fs/cgroup")
        controllers = v2 / "cgroup.controllers"
        if controllers.exists() and "cpu" in controllers.read_text().split():
            (v2 / "cgroup.subtree_control").write_text("+cpu")
            self.group = v2 / name
            self.group.mkdir(exist_ok=True)
            (self.group / "cpu.max").write_text(f"{int(cores * self.PERIOD_US)} {self.PERIOD_US}")
        elif (Path("/sys/fs/cgroup/cpu") / "cgroup.procs").exists():
            self.group = Path("/sys/fs/cgroup/cpu") / name
            self.group.mkdir(exist_ok=True)
            (self.group / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.group / "cpu.cfs_quota_us").write_text(str(int(cores * self.PERIOD_US)))
        else:
            raise SystemExit("--ingest-cpus needs a cgroup cpu controller (and root)")

    def add(self, pid: int) -> None:
        (self.group / "cgroup.procs").write_text(str(pid))  # the process and its threads

    def remove(self) -> None:
        """Once its processes have exited: an empty group can go."""
        with contextlib.suppress(OSError):
            self.group.rmdir()


@dataclass
class ProductionCluster:
    """PostgreSQL + Redis + role processes, all on this machine (tests/servers.py)."""

    ingest: int = 1
    correlate: int = 2
    notify: int = 0
    cron: int = 0
    #: A folder to copy each role's log to when the cluster stops.
    keep_logs: Path | None = None
    #: Cap each ingest process at this many cores (a cgroup each; root): see ``CpuCap``.
    ingest_cpus: float | None = None
    #: Settings for every role process (the bench's own ``DD0C_*`` are not passed on).
    extra_env: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dd0c-bench-")))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    role_names: list[str] = field(default_factory=list)  # procs' roles, in order
    pg: Any = None
    redis: Any = None
    caps: list[CpuCap] = field(default_factory=list)

    def start(self) -> Target:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from cryptography.fernet import Fernet  # noqa: PLC0415

        from servers import APP, OWNER, PostgresServer, RedisServer  # noqa: PLC0415

        self.pg = PostgresServer(self.workdir / "pg", durable=True)
        self.pg.start()
        self.pg.create_database("dd0c")
        self.redis = RedisServer(self.workdir / "redis")
        self.redis.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DD0C_")}
        env.update(
            DATABASE_URL=self.pg.dsn("dd0c", APP),
            DD0C_MIGRATION_DATABASE_URL=self.pg.dsn("dd0c", OWNER),
            REDIS_URL=self.redis.url,
            DD0C_SECRET_KEY=Fernet.generate_key().decode(),
            DD0C_JWT_SECRET=secrets.token_urlsafe(48),
            DD0C_DATA_DIR=str(self.workdir / "data"),
        )
        env.update(self.extra_env)
        cli = str(Path(sys.executable).with_name("dd0c-alert"))
        subprocess.run([cli, "migrate"], env=env, check=True, capture_output=True)
        env.pop("DD0C_MIGRATION_DATABASE_URL")

        def as_json(*args: str) -> dict[str, Any]:
            out = subprocess.run([cli, *args, "--json"], env=env, check=True, capture_output=True)
            result: dict[str, Any] = json.loads(out.stdout)
            return result

        tenant, integration, secret = bench_tenant(as_json)
        bases = []
        for n in range(self.ingest):
            port = free_port()
            bases.append(f"http://127.0.0.1:{port}")
            self._spawn(cli, env, f"ingest-{n}", "ingest", "--port", str(port))
            if self.ingest_cpus is not None:
                self.caps.append(CpuCap(f"dd0c-bench-ingest-{n}", self.ingest_cpus))
                self.caps[-1].add(self.procs[-1].pid)
        for n in range(self.correlate):
            self._spawn(cli, env, f"correlate-{n}", "correlate")
        for n in range(self.notify):
            self._spawn(cli, env, f"notify-{n}", "notify")
        for n in range(self.cron):
            self._spawn(cli, env, f"cron-{n}", "cron")
        self.env = env
        api_port = free_port()
        self._spawn(cli, env, "api", "api", "--port", str(api_port))
        api_base = f"http://127.0.0.1:{api_port}"
        for base in [*bases, api_base]:
            wait_healthy(base)
        log(f"production: {self.ingest} ingest, {self.correlate} correlate, in {self.workdir}")
        return Target(
            base=bases[0],
            tenant=tenant["tenant_id"],
            secret=secret,
            integration=integration["integration_id"],
            api_key=tenant["api_key"],
            bases=bases,
            pids=[proc.pid for proc in self.procs[:-1]],  # the api process idles
            owner_dsn=self.pg.dsn("dd0c", OWNER),
            api_base=api_base,
            roles=self._roles(),
        )

    def _roles(self) -> dict[str, list[int]]:
        roles: dict[str, list[int]] = {
            "postgres": [self.pg.proc.pid],
            "redis": [self.redis.proc.pid],
        }
        for name, proc in zip(self.role_names[:-1], self.procs[:-1], strict=True):
            roles.setdefault(name, []).append(proc.pid)
        return roles

    def _spawn(self, cli: str, env: dict[str, str], name: str, *args: str) -> None:
        out = (self.workdir / f"{name}.log").open("wb")
        self.role_names.append(args[0])
        self.procs.append(
            subprocess.Popen([cli, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for cap in self.caps:
            cap.remove()
        if self.keep_logs is not None:
            self.keep_logs.mkdir(parents=True, exist_ok=True)
            for path in self.workdir.glob("*.log"):
                shutil.copyfile(path, self.keep_logs / path.name)
            log(f"role logs kept in {self.keep_logs}")
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def proc_status_mb(pid: int | None, key: str) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of the process (all threads)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def role_cpu_seconds(target: Target) -> dict[str, float]:
    """CPU seconds so far by role; PostgreSQL's are its postmaster's and its backends'
    (the roles' pooled connections live through a load)."""
    found: dict[str, float] = {}
    for role, pids in target.roles.items():
        backends = [c for pid in pids for c in child_pids(pid)] if role == "postgres" else []
        found[role] = sum(cpu_seconds(pid) or 0.0 for pid in [*pids, *backends])
    return found


def client_cpu_seconds() -> float:
    """CPU seconds of the load tools run and waited for so far (``wrk``); the Python
    client runs in this process and is not counted."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds this machine has spent busy (all cores), from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def total(values: list[float | None]) -> float | None:
    """A figure summed over the role processes (None if any is unknown)."""
    known = [v for v in values if v is not None]
    return round(sum(known), 2) if values and len(known) == len(values) else None


def stored_alerts(target: Target) -> int | None:
    """Alert rows of the bench tenant, read straight from the database (own server only)."""
    if target.owner_dsn is not None:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(target.owner_dsn) as conn:
            found = conn.execute(
                "SELECT count(*) FROM alerts WHERE tenant_id = %s", (target.tenant,)
            ).fetchone()
        return int(found[0]) if found else 0
    if target.db_path is None:
        return None
    conn = sqlite3.connect(f"file:{target.db_path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(
            "SELECT count(*) FROM alerts WHERE tenant_id = ?", (target.tenant,)
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])
