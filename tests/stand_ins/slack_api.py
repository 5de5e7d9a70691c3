"""A Slack Web API stand-in: a real HTTP server on 127.0.0.1 answering like Slack.

Speaks ``auth.test``, ``chat.postMessage`` (threads with ``thread_ts``, message
metadata), ``chat.update``, ``conversations.history`` (metadata only with
``include_all_metadata``, cursor paging) and ``conversations.list``; takes the form and
JSON bodies and query strings slack_sdk sends; checks the bearer token.

Faults are scripted per method, one answer per call, in order::

    with SlackStandIn() as slack:
        slack.script("chat.postMessage", "ratelimited:3", "http_500", "accept_then_drop")
        ...  # the 4th post is answered normally

``ratelimited[:N]`` (429 + ``Retry-After: N``, default 1), ``http_500``,
``accept_then_drop`` (the post is stored, then the socket closes unanswered),
``hang[:S]`` (nothing stored; the socket closes after S seconds, default 10),
``accept_then_hang[:S]`` (the post is stored, the answer withheld for S seconds:
a client killed meanwhile never learns it posted),
``error:<code>`` (``{"ok": false, "error": code}``), ``malformed`` (the call is carried
out, the answer is a 200 whose JSON body is cut short), ``html_200`` (nothing carried
out, a 200 HTML page, as a captive proxy answers) and ``ok``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_JSON_ARGS = ("blocks", "metadata", "attachments")


@dataclass
class Call:
    """One request as received: method, merged arguments, token, time, fault applied."""

    method: str
    args: dict[str, Any]
    token: str
    at: float
    fault: str = "ok"


@dataclass
class _Channel:
    id: str
    name: str
    messages: list[dict[str, Any]] = field(default_factory=list)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client closing its keep-alive connection is no error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SlackStandIn:
    """Start with ``with SlackStandIn() as slack:``; point clients at ``slack.base_url``."""

    def __init__(
        self,
        tokens: tuple[str, ...] = ("xoxb-test-token",),
        *,
        channels: tuple[str, ...] = ("general",),
        auto_create_channels: bool = True,
    ) -> None:
        self.tokens = set(tokens)
        self.auto_create_channels = auto_create_channels
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._channels: dict[str, _Channel] = {}
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        for name in channels:
            self.add_channel(name)
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    # ------------------------------------------------------------------ test helpers

    def script(self, method: str, *answers: str) -> None:
        """Queue answers for the next calls of ``method`` (see the module docstring)."""
        with self._lock:
            self._faults[method].extend(answers)

    def add_channel(self, name: str) -> str:
        """Create ``name`` (without ``#``) if needed; its stable id."""
        with self._lock:
            return self._channel_named(name).id

    def channel_id(self, name: str) -> str:
        with self._lock:
            return self._channels[name.lstrip("#")].id

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel (name or id), oldest first."""
        with self._lock:
            found = self._find(channel.lstrip("#"))
            rows = found.messages if found else []
            return [dict(m) for m in rows if m.get("thread_ts", m["ts"]) == m["ts"]]

    def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message as a person in Slack would: chat.update then answers
        ``message_not_found`` for it."""
        with self._lock:
            found = self._find(channel.lstrip("#"))
            assert found is not None, channel
            found.messages = [m for m in found.messages if m["ts"] != ts]

    def replies(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        with self._lock:
            found = self._find(channel.lstrip("#"))
            rows = found.messages if found else []
            return [
                dict(m) for m in rows if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
            ]

    # ------------------------------------------------------------------ state (under lock)

    def _channel_named(self, name: str) -> _Channel:
        if name not in self._channels:
            self._channels[name] = _Channel(f"C{next(self._ids):08d}", name)
        return self._channels[name]

    def _find(self, key: str) -> _Channel | None:
        for channel in self._channels.values():
            if key in (channel.id, channel.name):
                return channel
        return None

    def _resolve(self, raw: str) -> _Channel | None:
        key = raw.lstrip("#")
        found = self._find(key)
        if found is None and self.auto_create_channels and not raw.startswith("C"):
            found = self._channel_named(key)
        return found

    def _next_ts(self) -> str:
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    # ------------------------------------------------------------------ methods

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                return {"ok": False, "error": "unknown_method"}
            result: dict[str, Any] = handler(args)
            return result

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "team": "dd0c",
            "team_id": "T00000001",
            "user": "dd0c-alert",
            "user_id": "U00000001",
            "bot_id": "B00000001",
        }

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve(str(args.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        message: dict[str, Any] = {
            "type": "message",
            "ts": self._next_ts(),
            "bot_id": "B00000001",
            "text": args.get("text", ""),
            "blocks": args.get("blocks", []),
        }
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        if args.get("metadata"):
            message["metadata"] = args["metadata"]
        channel.messages.append(message)
        return {"ok": True, "channel": channel.id, "ts": message["ts"], "message": message}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._find(str(args.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        for message in channel.messages:
            if message["ts"] == str(args.get("ts")):
                message.update(text=args.get("text", ""), blocks=args.get("blocks", []))
                return {
                    "ok": True,
                    "channel": channel.id,
                    "ts": message["ts"],
                    "text": message["text"],
                }
        return {"ok": False, "error": "message_not_found"}

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._find(str(args.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(args.get("oldest") or 0)
        rows = [
            m
            for m in reversed(channel.messages)
            if m.get("thread_ts", m["ts"]) == m["ts"] and float(m["ts"]) > oldest
        ]
        if not _truthy(args.get("include_all_metadata")):
            rows = [{k: v for k, v in m.items() if k != "metadata"} for m in rows]
        return self._page(rows, "messages", args)

    def _m_conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        rows = [{"id": c.id, "name": c.name, "is_archived": False} for c in self._channels.values()]
        return self._page(rows, "channels", args)

    @staticmethod
    def _page(rows: list[dict[str, Any]], key: str, args: dict[str, Any]) -> dict[str, Any]:
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        end = start + limit
        more = end < len(rows)
        return {
            "ok": True,
            key: rows[start:end],
            "has_more": more,
            "response_metadata": {"next_cursor": str(end) if more else ""},
        }

    # ------------------------------------------------------------------ HTTP

    def _take_fault(self, method: str) -> str:
        with self._lock:
            queue = self._faults.get(method)
            return queue.popleft() if queue else "ok"

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _args(self) -> dict[str, Any]:
                parts = urlsplit(self.path)
                args: dict[str, Any] = dict(parse_qsl(parts.query))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw and "json" in (self.headers.get("Content-Type") or ""):
                    args.update(json.loads(raw))
                elif raw:
                    args.update(parse_qsl(raw.decode()))
                for name in _JSON_ARGS:
                    if isinstance(args.get(name), str) and args[name]:
                        args[name] = json.loads(args[name])
                return args

            def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, data: dict[str, Any], status: int = 200, **extra: str) -> None:
                self._send(
                    status, json.dumps(data).encode(), "application/json; charset=utf-8", extra
                )

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _serve(self) -> None:
                method = urlsplit(self.path).path.rsplit("/", 1)[-1]
                args = self._args()
                auth = self.headers.get("Authorization") or ""
                token = auth.removeprefix("Bearer ").strip() or str(args.pop("token", ""))
                fault = stand_in._take_fault(method)
                stand_in._record(Call(method, args, token, time.time(), fault))
                if token not in stand_in.tokens:
                    self._json({"ok": False, "error": "invalid_auth"})
                    return
                kind, _, arg = fault.partition(":")
                if kind == "ratelimited":
                    self._json(
                        {"ok": False, "error": "ratelimited"}, 429, **{"Retry-After": arg or "1"}
                    )
                elif kind == "http_500":
                    self._send(500, b"<html>Internal Server Error</html>", "text/html", {})
                elif kind == "error":
                    self._json({"ok": False, "error": arg})
                elif kind == "hang":
                    stand_in._stopping.wait(float(arg or 10))
                    self._drop()
                elif kind == "accept_then_hang":
                    stand_in._answer(method, args)
                    stand_in._stopping.wait(float(arg or 10))
                    self._drop()
                elif kind == "malformed":
                    stand_in._answer(method, args)
                    self._send(200, b'{"ok": true, "chan', "application/json; charset=utf-8", {})
                elif kind == "html_200":
                    self._send(200, b"<html>Sign in to continue</html>", "text/html", {})
                elif kind == "accept_then_drop":
                    stand_in._answer(method, args)
                    self._drop()
                else:
                    self._json(stand_in._answer(method, args))

        return Handler
