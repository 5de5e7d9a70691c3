"""Real PostgreSQL and Redis servers for the tests: Debian's binaries, a temporary
folder, a free port. Nothing is mocked; a missing binary fails loudly with how to
install it (``.ci/run`` does)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis

PG_BIN = Path(os.environ.get("DD0C_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: The owner role runs migrations and owns every table; the application role is
#: neither superuser nor BYPASSRLS, so row-level security applies to it.
OWNER, APP = "dd0c_owner", "dd0c_app"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The ``dd0c-alert`` command of the environment running the tests.
CLI = Path(sys.executable).parent / "dd0c-alert"


def start_serve(
    env: dict[str, str], port: int, log: Path, errors: Path | None = None
) -> subprocess.Popen[bytes]:
    """``dd0c-alert serve`` on ``port`` with ``env``, its output appended to ``log``
    (its stderr to ``errors`` when given); returns once it answers ``/healthz`` (a
    loaded machine starts slowly: 60 s)."""
    with open(log, "ab") as out, open(errors or log, "ab") as err:
        process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port)], env=env, stdout=out, stderr=err
        )
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (errors or log).read_text()[-3000:]
        assert time.monotonic() < deadline, "serve never got healthy"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.05)


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


@dataclass
class PostgresServer:
    """One cluster for the test session; each test gets its own database."""

    root: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: Tests trade crash safety for speed; a benchmark keeps PostgreSQL's defaults.
    durable: bool = False
    #: A benchmark's cluster outlives the run in ``root`` (rebuilding its history
    #: takes many minutes): an existing one is started again, nothing is removed.
    keep: bool = False

    def _as_postgres(self) -> dict[str, object]:
        """initdb refuses to run as root: run the server as the ``postgres`` user."""
        if os.geteuid() != 0:
            return {}
        user = pwd.getpwnam("postgres")
        return {"user": user.pw_uid, "group": user.pw_gid}

    def start(self) -> None:
        initdb = PG_BIN / "initdb"
        if not initdb.exists():
            raise RuntimeError(
                f"{initdb} not found: install PostgreSQL 15 (apt-get install postgresql)"
            )
        ids = self._as_postgres()
        if ids and not self.keep:
            # The postgres user cannot enter root's private temp folders. The folder
            # given, made for this server and still empty, is not left behind.
            with contextlib.suppress(OSError):
                self.root.rmdir()
            self.root = Path(tempfile.mkdtemp(prefix="dd0c-pg-"))
        self.root.mkdir(parents=True, exist_ok=True)
        if ids:
            shutil.chown(self.root, ids["user"], ids["group"])  # type: ignore[arg-type]
        data = self.root / "pgdata"
        existing = (data / "PG_VERSION").exists()
        if not existing:
            subprocess.run(
                [str(initdb), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
                check=True,
                capture_output=True,
                **ids,  # type: ignore[arg-type]
            )
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.root}",
                *(
                    ()
                    if self.durable
                    else (
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                    )
                ),
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "postgres.log", "wb"),  # noqa: SIM115
            **ids,  # type: ignore[arg-type]
        )
        _wait_for_port(self.port, 30, self.proc)
        self._wait_ready()
        if existing:
            return
        with self.connect("postgres", "postgres") as conn:
            conn.execute(f"CREATE ROLE {OWNER} LOGIN")
            conn.execute(f"CREATE ROLE {APP} LOGIN NOSUPERUSER NOBYPASSRLS")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with self.connect("postgres", "postgres"):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def dsn(self, database: str, user: str = APP) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str, user: str = APP) -> str:
        """The SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str, user: str = APP) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn(database, user), autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> None:
        with self.connect("postgres", "postgres") as conn:
            clause = f" TEMPLATE {template}" if template else ""
            conn.execute(f"CREATE DATABASE {name} OWNER {OWNER}{clause}")

    def drop_database(self, name: str) -> None:
        with self.connect("postgres", "postgres") as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        if self._as_postgres() and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class RedisServer:
    root: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, 10, self.proc)

    def flush(self) -> None:
        """Forget every key, if the server runs."""
        if self.proc is not None and self.proc.poll() is None:
            with redis.Redis(port=self.port, socket_timeout=5) as client:
                client.flushall()

    def kill(self) -> None:
        """SIGKILL, as when the Redis host dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
