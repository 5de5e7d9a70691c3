"""The network between the roles and PostgreSQL, as a real TCP relay on 127.0.0.1 that
the test can break the way networks break::

    with DatabaseLink(pg_server.port) as link:
        url = f"postgresql://dd0c_app@127.0.0.1:{link.port}/db"
        link.down()     # connections cut, new ones closed at once: the server is gone
        link.silent()   # connections cut, new ones accepted and never answered: a
                        # dead host behind a proxy or a partition that holds the SYN
        link.freeze()   # connections kept, nothing relayed: a server that hangs (its
                        # host's kernel still acknowledges what is sent)
        link.up()       # relays again

Nothing of PostgreSQL's protocol is touched: bytes are copied both ways.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class DatabaseLink:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._mode = "up"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        self._thawed = threading.Event()
        self._thawed.set()

    def __enter__(self) -> DatabaseLink:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        self._thawed.set()
        self._cut()
        self._listener.close()

    def up(self) -> None:
        self._mode = "up"
        self._thawed.set()

    def freeze(self) -> None:
        self._thawed.clear()
        self._mode = "frozen"

    def down(self) -> None:
        self._mode = "down"
        self._cut()

    def silent(self) -> None:
        self._mode = "silent"
        self._cut()

    def _cut(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._mode == "down":
                client.close()
                continue
            with self._lock:
                self._open.append(client)
            if self._mode == "silent":
                continue  # held open, never answered
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open.append(server)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=_pump, args=(source, sink, self._thawed), daemon=True
                ).start()


def _pump(source: socket.socket, sink: socket.socket, thawed: threading.Event) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            thawed.wait()  # frozen: held, neither relayed nor refused
            sink.sendall(chunk)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
