"""The thread each long-running part of a process runs in (worker, notifier,
scheduler): started and stopped with the runtime, woken early when there is work."""

from __future__ import annotations

import threading


class Background:
    """A named daemon thread running ``run`` until ``stop``; ``wake`` cuts a wait short.

    ``run`` is the subclass's loop: it returns once ``stopping`` is set.
    """

    THREAD_NAME = "background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=self.THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def rest(self, seconds: float) -> None:
        """Wait ``seconds`` whatever wakes come in (new work cannot be done either),
        unless stopped."""
        self._stop.wait(seconds)

    def pause(self, seconds: float) -> None:
        """Wait up to ``seconds``, or until woken or stopped."""
        self._wake.wait(seconds)
        self._wake.clear()
