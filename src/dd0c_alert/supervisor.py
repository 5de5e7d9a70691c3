"""``serve`` as two processes: this one admits webhooks and serves the API and the
dashboard; a child it supervises runs the worker, the notifier and the scheduled jobs.

In one process, correlating a storm took the interpreter that answers webhooks: on two
cores admission alone answers about twice the posts per second of the single process,
at a fraction of its p99 (``bench/race.py``). The child is told of every commit through
a pipe, so the worker starts on new events at once instead of at its next poll; the
same pipe's end-of-file tells it the parent is gone (even after a SIGKILL), and it then
exits at once, as the worker thread of a killed single process would have.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

#: Roles the child runs; the parent runs the rest (``ingest`` and ``api``).
BACKGROUND_ROLES = frozenset({"correlate", "notify", "cron"})
#: Waits before restarting a child that died, doubling up to the last.
_RESTART_DELAYS = (0.5, 1, 2, 5, 10, 30)
_STOP_TIMEOUT_SECONDS = 20.0


def share_metrics_directory() -> Path | None:
    """Make the two processes' metrics one set: prometheus-client's multi-process mode
    in a private folder, unless the operator configured one. Must run before anything
    imports ``prometheus_client``, which reads the setting on import. Returns the
    folder to remove on exit (None when it is the operator's)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    directory = Path(tempfile.mkdtemp(prefix="dd0c-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def spawn_linked(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``python -m dd0c_alert *args FD``, FD the read end of a new pipe, and return
    the process with the pipe's write end, which only this process holds: when this
    process dies, even by SIGKILL, the child reads end of file (``ParentLink``)."""
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-m", "dd0c_alert", *args, str(read_fd)]
    try:
        proc = subprocess.Popen(  # noqa: S603 (our own CLI)
            command, pass_fds=(read_fd,), env=child_environment(os.environ)
        )
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    return proc, write_fd


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a child starts with: this one, with glibc's malloc limited to
    two arenas unless the operator chose otherwise. By default glibc gives a thread
    that finds the arenas busy one of its own (up to eight per core), and each keeps
    the memory freed in it in pieces. In 12-minute soaks at 2,000 alerts/s the
    worker's process grew 4.7 MB over minutes 4-12 with the default and 0.6 MB with
    two arenas and the inbox's fixed statements (bench/README.md)."""
    return {"MALLOC_ARENA_MAX": "2", **environ}


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; True if it had to be killed."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True
    return False


class BackgroundProcess:
    """The child process and the thread that restarts it when it dies."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._wake_fd: int | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def wake(self) -> None:
        """Called after each commit of the ingest queue: one byte down the pipe. A full
        pipe already holds a wake-up the child has not read, so that one is enough."""
        fd = self._wake_fd
        if fd is None:
            return
        with contextlib.suppress(OSError):  # BlockingIOError: a full pipe
            os.write(fd, b"\x01")

    def stop(self) -> None:
        """SIGTERM the child, let it finish its batch and stop, then close the pipe."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if (
            proc is not None
            and proc.poll() is None
            and stop_process(proc, _STOP_TIMEOUT_SECONDS)  # True: killed
        ):
            log.error("background_process_killed", reason="did not stop in time")
        self._close_pipe()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _spawn(self) -> None:
        proc, write_fd = spawn_linked("serve-background", "--wake-fd")
        os.set_blocking(write_fd, False)
        with self._lock:
            self._close_pipe()
            self._proc, self._wake_fd = proc, write_fd
        if self._stopping.is_set():  # stop() ran while this one started
            proc.terminate()

    def _close_pipe(self) -> None:
        if self._wake_fd is not None:
            os.close(self._wake_fd)
            self._wake_fd = None

    def _supervise(self) -> None:
        failures = 0
        while True:
            proc = self._proc
            assert proc is not None
            code = proc.wait()
            if self._stopping.is_set():
                return
            delay = _RESTART_DELAYS[min(failures, len(_RESTART_DELAYS) - 1)]
            # Waited out before the error is logged: a SIGTERM sent to the process group
            # (systemd's default stop) reaches the child first, and is no failure.
            if self._stopping.wait(delay):
                return
            log.error("background_process_exited", exit_code=code, restarted_after_seconds=delay)
            failures += 1
            self.restarts += 1
            self._spawn()


class ParentLink:
    """The child's end of the pipe: each byte is a commit to wake the worker for; end
    of file means the parent died without stopping this process, which then exits at
    once (a new ``serve`` starts its own worker). Started first thing, so a parent
    killed while the child is still starting up is noticed too."""

    def __init__(self, wake_fd: int) -> None:
        self._fd = wake_fd
        self._wake: Callable[[], None] = lambda: None
        threading.Thread(target=self._follow, name="parent-link", daemon=True).start()

    def forward_to(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def _follow(self) -> None:
        while os.read(self._fd, 4096):
            self._wake()
        os._exit(0)
