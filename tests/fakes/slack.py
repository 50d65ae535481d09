"""A local Slack Web API (and response_url) that records every call, for slack-sdk's `base_url`.

It answers the methods sloguard uses the way Slack does and keeps what Slack keeps: messages per channel
(threads, `metadata`, `chat.update`), channels made by `conversations.create`, their invitations. It reads
`conversations.history` / `conversations.replies` / `conversations.list` from that state, with Slack's
cursor paging. Canned `conversations.replies` answers (`replies`) still win over the stored state.

`users` holds the people `users.info` knows (Slack's user objects, `profile.display_name` and all).

It can also fail the way a network and Slack fail, all of it safe to drive from any thread:
- `delay`: every answer waits this many seconds (to prove acks do not wait for the Web API);
- `down()` / `up()` / `flap()`: the port refuses connections, then listens again on the same port;
- `rate_limit(count, retry_after)`: the next `chat.*` calls answer HTTP 429 with `Retry-After`;
- `hold_answer(method)`: the next call of `method` is carried out but never answered (`held`, `release()`).

Every call is recorded in `calls` (`(method, params)`) and `log` (`(time.monotonic() at arrival, method,
params)`), after it has taken effect, so a test that sees a call also sees what it changed.
"""

from __future__ import annotations

import base64
import copy
import errno
import json
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

BOT_USER = "UBOT"
BOT_ID = "B1"
JSON_FIELDS = ("blocks", "attachments", "metadata")  # sent as JSON strings inside form bodies
CHANNEL_NAME = re.compile(r"^[\w-]+$")


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True  # SO_REUSEADDR: listen again on the same port after down()
    daemon_threads = True
    block_on_close = False  # a held answer must not keep down() or server_close() waiting

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn), which can take seconds; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1")


def _ts_key(ts: Any) -> Decimal:
    try:
        key = Decimal(str(ts))
    except InvalidOperation:
        return Decimal(-1)
    return key if key.is_finite() else Decimal(-1)


def _cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _from_cursor(cursor: Any) -> Decimal | None:
    """The ts a cursor points at; None for a cursor this stand-in never gave out."""
    try:
        text = base64.b64decode(str(cursor), validate=True).decode()
    except ValueError:
        return None
    kind, _, ts = text.partition(":")
    return Decimal(ts) if kind == "next_ts" and _ts_key(ts) >= 0 else None


def _limit(value: Any, default: int, most: int) -> int:
    try:
        number = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default
    return default if number <= 0 else min(number, most)


def _page(
    items: list[dict[str, Any]], limit: int, next_key: Callable[[dict[str, Any]], str]
) -> dict[str, Any]:
    more = len(items) > limit
    return {
        "has_more": more,
        "response_metadata": {"next_cursor": next_key(items[limit]) if more else ""},
    }


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.log: list[tuple[float, str, dict[str, Any]]] = []
        self.delay = 0.0
        self.replies: dict[tuple[str, str], list[dict[str, Any]]] = {}  # canned conversations.replies
        self.users: dict[str, dict[str, Any]] = {}  # users.info: user id -> Slack's user object
        self.held = threading.Event()  # set while a call's answer is being withheld (hold_answer)
        self.url = ""
        self._ts = int(time.time())  # Slack ts are its clock: seconds since the epoch, unique per message
        self._lock = threading.RLock()
        # Slack's state: channel id -> channel; channel id -> its messages (top level and replies), by ts.
        self._channels: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._members: dict[str, set[str]] = {}
        self._created: list[str] = []  # ids made by conversations.create, in order
        self._channel_counter = 0
        # Failure modes.
        self._rate_limited = 0
        self._retry_after = 1
        self._holds: dict[str, int] = {}
        self._waiting: list[threading.Event] = []
        self._closing = False
        self._inflight = 0
        self._idle = threading.Condition(self._lock)
        # The listening server; _life serialises down()/up() from tests, timers and the flapper.
        self._life = threading.Lock()
        self._server: _Server | None = None
        self._port = 0
        self._handler: type[BaseHTTPRequestHandler] | None = None
        self._flapper: threading.Thread | None = None
        self._stop_flap = threading.Event()

    # -- addresses and recorded calls ---------------------------------------------------------------

    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.url}/response/{name}"

    def called(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [params for name, params in self.calls if name == method]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> bool:
        """Whether `predicate()` came true within `timeout` seconds (asked every 50 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # -- the state, as a test reads it ------------------------------------------------------------------

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Top-level messages oldest first, of `channel` or of all channels (each then with its "channel")."""
        with self._lock:
            if channel is not None:
                return copy.deepcopy(self._top_level(self._resolve(channel)))
            found = [
                {**copy.deepcopy(message), "channel": name}
                for name in self._messages
                for message in self._top_level(name)
            ]
        return sorted(found, key=lambda message: _ts_key(message["ts"]))

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies to the message `ts` in `channel`, oldest first (without the parent)."""
        with self._lock:
            return copy.deepcopy(self._replies_to(self._resolve(channel), str(ts)))

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The stored message (top level or reply) `ts` of `channel`, or None."""
        with self._lock:
            found = self._find(self._resolve(channel), str(ts))
            return copy.deepcopy(found) if found is not None else None

    def channels(self) -> list[dict[str, Any]]:
        """Every channel Slack knows: created by conversations.create or posted to, in that order."""
        with self._lock:
            return [
                {key: value for key, value in channel.items() if key != "members"}
                for channel in copy.deepcopy(list(self._channels.values()))
            ]

    # -- failure modes ---------------------------------------------------------------------------------

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        """The next `count` calls of `chat.*` methods answer HTTP 429 (recorded, changing nothing)."""
        with self._lock:
            self._rate_limited = count
            self._retry_after = retry_after

    def hold_answer(self, method: str) -> None:
        """The next call of `method` takes effect and is recorded, but is never answered: its handler
        waits for `release()` (or the stand-in's exit), then closes the connection. `held` is set
        while it waits. A call answered 429 by `rate_limit` is not that call."""
        with self._lock:
            self._holds[method] = self._holds.get(method, 0) + 1

    def release(self) -> None:
        """Let every held call go: each closes its connection without an answer."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
            self.held.clear()
        for event in waiting:
            event.set()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def down(self) -> None:
        """Stop listening: new connections are refused (ECONNREFUSED). The state stays."""
        with self._life:
            server, self._server = self._server, None
            if server is not None:
                # Refuse at once: on Linux shutting a listening socket down makes new connections get
                # ECONNREFUSED (and wakes the accept loop), where closing it only after serve_forever
                # stops would leave a moment in which connections queue and are then reset.
                try:
                    server.socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                server.shutdown()
                server.server_close()

    def up(self) -> None:
        """Listen again, on the same port (so `url` stays right). Safe from any thread."""
        with self._life:
            if self._server is not None or self._handler is None:
                return
            deadline = time.monotonic() + 5.0
            while True:
                try:
                    server = _Server(("127.0.0.1", self._port), self._handler)
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)
            self._start(server)

    def flap(self, down_s: float, up_s: float, total_s: float) -> None:
        """In a background thread for `total_s` seconds: down for `down_s`, up for `up_s`, again;
        it starts with down and always ends up. `stop_flapping()` ends it early."""
        self.stop_flapping()
        self._stop_flap = stop = threading.Event()
        deadline = time.monotonic() + total_s

        def cycle() -> None:
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    self.down()
                    if stop.wait(max(0.0, min(down_s, deadline - time.monotonic()))):
                        break
                    self.up()
                    if stop.wait(max(0.0, min(up_s, deadline - time.monotonic()))):
                        break
            finally:
                self.up()

        self._flapper = threading.Thread(target=cycle, name="fake-slack-flap", daemon=True)
        self._flapper.start()

    @property
    def flapping(self) -> bool:
        flapper = self._flapper
        return flapper is not None and flapper.is_alive()

    def stop_flapping(self) -> None:
        """End a `flap()` (waiting for its thread); the stand-in is up afterwards."""
        with self._lock:
            flapper, self._flapper = self._flapper, None
        if flapper is not None:
            self._stop_flap.set()
            flapper.join()
            self.up()

    # -- Slack's methods ------------------------------------------------------------------------------

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if method == "auth.test":
                return {
                    "ok": True,
                    "user_id": BOT_USER,
                    "team_id": "T1",
                    "bot_id": BOT_ID,
                    "url": "https://t.slack.com/",
                }
            if method == "chat.postMessage":
                return self._post_message(params)
            if method == "chat.update":
                return self._update(params)
            if method == "conversations.history":
                return self._history(params)
            if method == "conversations.replies":
                return self._conversation_replies(params)
            if method == "conversations.create":
                return self._create(params)
            if method == "conversations.list":
                return self._list(params)
            if method == "conversations.invite":
                return self._invite(params)
            if method == "users.info":
                found = self.users.get(str(params.get("user")))
                return {"ok": True, "user": found} if found else {"ok": False, "error": "user_not_found"}
            if method in ("views.open", "chat.postEphemeral", "reactions.add"):
                return {"ok": True}
            return {"ok": False, "error": "unknown_method"}

    def _resolve(self, channel: Any) -> str:
        """A channel's key: an id as given; `#name` or `name` of a created channel is its id."""
        text = str(channel or "")
        if text in self._channels:
            return text
        name = text.removeprefix("#")
        for channel_id in self._created:
            if self._channels[channel_id].get("name") == name:
                return channel_id
        return text

    def _ensure_channel(self, channel_id: str) -> None:
        if channel_id not in self._channels:
            self._channels[channel_id] = {"id": channel_id, "is_channel": True, "is_private": False}
            self._messages[channel_id] = []
            self._members[channel_id] = set()

    def _find(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        for message in self._messages.get(channel_id, []):
            if message["ts"] == ts:
                return message
        return None

    @staticmethod
    def _is_top_level(message: dict[str, Any]) -> bool:
        thread_ts = message.get("thread_ts")
        return thread_ts is None or thread_ts == message["ts"] or message.get("subtype") == "thread_broadcast"

    def _top_level(self, channel_id: str) -> list[dict[str, Any]]:
        return [message for message in self._messages.get(channel_id, []) if self._is_top_level(message)]

    def _replies_to(self, channel_id: str, ts: str) -> list[dict[str, Any]]:
        return [
            message
            for message in self._messages.get(channel_id, [])
            if message.get("thread_ts") == ts and message["ts"] != ts
        ]

    @staticmethod
    def _metadata(value: Any) -> tuple[dict[str, Any] | None, str | None]:
        """Slack's message metadata, or the error Slack gives for a malformed one."""
        if value is None or value == "":
            return None, None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None, "invalid_metadata_format"
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("event_type"), str)
            or not value["event_type"]
            or not isinstance(value.get("event_payload", {}), dict)
        ):
            return None, "invalid_metadata_format"
        return {"event_type": value["event_type"], "event_payload": value.get("event_payload", {})}, None

    @staticmethod
    def _visible(message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        shown = copy.deepcopy(message)
        if not with_metadata:
            shown.pop("metadata", None)
        return shown

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        given = params.get("channel")
        if not given:
            return {"ok": False, "error": "channel_not_found"}
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            return {"ok": False, "error": "no_text"}
        for key in ("blocks", "attachments"):
            if params.get(key) is not None and not isinstance(params[key], list):
                return {"ok": False, "error": f"invalid_{key}"}
        metadata, error = self._metadata(params.get("metadata"))
        if error:
            return {"ok": False, "error": error}
        channel_id = self._resolve(given)
        self._ensure_channel(channel_id)
        self._ts += 1
        ts = f"{self._ts}.000100"
        message: dict[str, Any] = {
            "type": "message",
            "ts": ts,
            "text": params.get("text") or "",
            "blocks": params.get("blocks") or [],
            "user": BOT_USER,
            "bot_id": BOT_ID,
        }
        if params.get("attachments"):
            message["attachments"] = params["attachments"]
        thread_ts = params.get("thread_ts")
        if thread_ts:
            thread_ts = str(thread_ts)
            parent = self._find(channel_id, thread_ts)
            if parent is not None and not self._is_top_level(parent):
                thread_ts = str(parent["thread_ts"])  # a reply to a reply joins the parent's thread
                parent = self._find(channel_id, thread_ts)
            message["thread_ts"] = thread_ts
            message["parent_user_id"] = parent.get("user", BOT_USER) if parent else BOT_USER
            if _truthy(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
            if parent is not None:
                users = parent.setdefault("reply_users", [])
                if BOT_USER not in users:
                    users.append(BOT_USER)
                parent.update(
                    thread_ts=thread_ts,
                    reply_count=int(parent.get("reply_count", 0)) + 1,
                    reply_users_count=len(users),
                    latest_reply=ts,
                )
        if metadata is not None:
            message["metadata"] = metadata
        self._messages[channel_id].append(message)
        return {"ok": True, "channel": given, "ts": ts, "message": copy.deepcopy(message)}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(params.get("channel"))
        if channel_id not in self._channels:
            return {"ok": False, "error": "channel_not_found"}
        message = self._find(channel_id, str(params.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        metadata, error = self._metadata(params.get("metadata"))
        if error:
            return {"ok": False, "error": error}
        if "text" in params:
            message["text"] = params["text"] or ""
        if "blocks" in params:
            message["blocks"] = params["blocks"] or []
        if metadata is not None:
            message["metadata"] = metadata
        self._ts += 1
        message["edited"] = {"user": BOT_USER, "ts": f"{self._ts}.000100"}
        return {
            "ok": True,
            "channel": params.get("channel"),
            "ts": message["ts"],
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(params.get("channel"))
        if channel_id not in self._channels:
            return {"ok": False, "error": "channel_not_found"}
        inclusive = _truthy(params.get("inclusive"))
        oldest = _ts_key(params.get("oldest") or "0")
        latest = _ts_key(params["latest"]) if params.get("latest") else None

        def inside(message: dict[str, Any]) -> bool:
            ts = _ts_key(message["ts"])
            above = ts >= oldest if inclusive else ts > oldest
            below = latest is None or (ts <= latest if inclusive else ts < latest)
            return above and below

        found = [m for m in reversed(self._top_level(channel_id)) if inside(m)]  # newest first
        if params.get("cursor"):
            start = _from_cursor(params["cursor"])
            if start is None:
                return {"ok": False, "error": "invalid_cursor"}
            found = [message for message in found if _ts_key(message["ts"]) <= start]
        limit = _limit(params.get("limit"), 100, 999)
        with_metadata = _truthy(params.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [self._visible(message, with_metadata) for message in found[:limit]],
            "pin_count": 0,
            **_page(found, limit, lambda message: _cursor(message["ts"])),
        }

    def _conversation_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (str(params.get("channel")), str(params.get("ts")))
        if key in self.replies:  # canned by a test
            return {"ok": True, "messages": self.replies[key], "has_more": False}
        channel_id = self._resolve(params.get("channel"))
        if channel_id not in self._channels:
            return {"ok": False, "error": "channel_not_found"}
        ts = str(params.get("ts"))
        message = self._find(channel_id, ts)
        if message is None:
            return {"ok": False, "error": "thread_not_found"}
        # A parent comes with its replies; a reply's ts gives that reply alone.
        found = [message, *self._replies_to(channel_id, ts)] if self._is_top_level(message) else [message]
        if params.get("cursor"):
            start = _from_cursor(params["cursor"])
            if start is None:
                return {"ok": False, "error": "invalid_cursor"}
            found = [reply for reply in found if _ts_key(reply["ts"]) >= start]
        limit = _limit(params.get("limit"), 1000, 1000)
        with_metadata = _truthy(params.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [self._visible(reply, with_metadata) for reply in found[:limit]],
            **_page(found, limit, lambda reply: _cursor(reply["ts"])),
        }

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params.get("name") or "")
        if not name:
            return {"ok": False, "error": "invalid_name_required"}
        if len(name) > 80:
            return {"ok": False, "error": "invalid_name_maxlength"}
        if not CHANNEL_NAME.match(name) or name != name.lower():
            return {"ok": False, "error": "invalid_name_specials"}
        if any(self._channels[channel_id].get("name") == name for channel_id in self._created):
            return {"ok": False, "error": "name_taken"}
        while True:
            self._channel_counter += 1
            channel_id = f"C{self._channel_counter}"
            if channel_id not in self._channels:
                break
        self._ensure_channel(channel_id)
        self._channels[channel_id].update(
            name=name,
            is_private=_truthy(params.get("is_private")),
            created=int(time.time()),
            creator=BOT_USER,
            is_archived=False,
        )
        self._created.append(channel_id)
        return {"ok": True, "channel": self._public(channel_id)}

    def _public(self, channel_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._channels[channel_id])

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        types = {kind.strip() for kind in str(params.get("types") or "public_channel").split(",")}
        found = [
            self._public(channel_id)
            for channel_id in self._created
            if ("private_channel" if self._channels[channel_id]["is_private"] else "public_channel") in types
        ]  # no channel is ever archived here, so exclude_archived changes nothing
        start = 0
        if params.get("cursor"):
            try:
                text = base64.b64decode(str(params["cursor"]), validate=True).decode()
                kind, _, offset = text.partition(":")
                start = int(offset) if kind == "next_offset" else -1
            except ValueError:
                start = -1
            if start < 0:
                return {"ok": False, "error": "invalid_cursor"}
        limit = _limit(params.get("limit"), 100, 1000)
        rest = found[start:]
        return {
            "ok": True,
            "channels": rest[:limit],
            "response_metadata": {
                "next_cursor": (
                    base64.b64encode(f"next_offset:{start + limit}".encode()).decode()
                    if len(rest) > limit
                    else ""
                )
            },
        }

    def _invite(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(params.get("channel"))
        if channel_id not in self._channels:
            return {"ok": False, "error": "channel_not_found"}
        users = [user.strip() for user in str(params.get("users") or "").split(",") if user.strip()]
        if not users:
            return {"ok": False, "error": "no_user"}
        members = self._members[channel_id]
        if all(user in members for user in users):
            return {"ok": False, "error": "already_in_channel"}
        members.update(users)
        return {"ok": True, "channel": self._public(channel_id)}

    # -- the HTTP server ------------------------------------------------------------------------------

    def _start(self, server: _Server) -> None:
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        ).start()

    def _receive(self, method: str, params: dict[str, Any], arrival: float) -> tuple[int, Any, Any]:
        """Carry the call out and record it: (HTTP status, body, the event to wait on if held)."""
        with self._lock:
            if method.startswith("chat.") and self._rate_limited > 0:
                self._rate_limited -= 1
                status, body = 429, {"ok": False, "error": "ratelimited"}
            else:
                status = 200
                body = {"ok": True} if method.startswith("/response/") else self.answer(method, params)
            hold = None
            if status == 200 and self._holds.get(method, 0) > 0 and not self._closing:
                self._holds[method] -= 1
                hold = threading.Event()
                self._waiting.append(hold)
                self.held.set()
            self.calls.append((method, params))
            self.log.append((arrival, method, params))
            return status, body, hold

    def _begin(self) -> None:
        with self._lock:
            self._inflight += 1

    def _done(self) -> None:
        with self._lock:
            self._inflight -= 1
            self._idle.notify_all()

    def __enter__(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrival = time.monotonic()
                fake._begin()
                try:
                    self._serve(arrival)
                finally:
                    fake._done()

            def _serve(self, arrival: float) -> None:
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}  # GET arguments
                if "json" in (self.headers.get("Content-Type") or ""):
                    try:
                        body = json.loads(raw or "{}")
                    except ValueError:
                        body = {}
                    params |= body if isinstance(body, dict) else {}
                else:
                    params |= {k: v[0] for k, v in parse_qs(raw).items()}
                    for key in JSON_FIELDS:
                        if isinstance(params.get(key), str):
                            try:
                                params[key] = json.loads(params[key])
                            except ValueError:
                                pass  # left as sent; the method answers invalid_*
                if fake.delay:
                    time.sleep(fake.delay)
                method = path if path.startswith("/response/") else path.removeprefix("/api/")
                status, answer, hold = fake._receive(method, params, arrival)
                if hold is not None:
                    hold.wait()
                    self.close_connection = True
                    return  # the connection closes with no answer
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", str(fake._retry_after))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self._handler = Handler
        server = _Server(("127.0.0.1", 0), Handler)
        self._port = int(server.server_address[1])
        self.url = f"http://127.0.0.1:{self._port}"
        with self._life:
            self._start(server)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flapping()
        with self._lock:
            self._closing = True
        self.release()
        self.down()
        with self._lock:  # the answers under way finish, as before held answers existed
            self._idle.wait_for(lambda: self._inflight == 0, timeout=10.0 + self.delay)
