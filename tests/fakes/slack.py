"""A local Slack Web API (and response_url) that records every call, for slack-sdk's `base_url`.

It answers the methods sloguard uses with `{"ok": true, ...}` the way Slack does, can delay every answer
(to prove acks do not wait for the Web API), and serves canned `conversations.replies`.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.delay = 0.0
        self.replies: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._ts = 1_764_100_000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.url}/response/{name}"

    def called(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [params for name, params in self.calls if name == method]

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": "UBOT",
                "team_id": "T1",
                "bot_id": "B1",
                "url": "https://t.slack.com/",
            }
        if method == "chat.postMessage":
            with self._lock:
                self._ts += 1
                ts = f"{self._ts}.000100"
            return {
                "ok": True,
                "channel": params.get("channel"),
                "ts": ts,
                "message": {"text": params.get("text")},
            }
        if method == "chat.update":
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        if method == "conversations.replies":
            key = (str(params.get("channel")), str(params.get("ts")))
            return {"ok": True, "messages": self.replies.get(key, [])}
        if method in ("conversations.create",):
            return {"ok": True, "channel": {"id": "CNEW", "name": params.get("name")}}
        if method in ("conversations.invite", "views.open", "chat.postEphemeral", "reactions.add"):
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}

    def __enter__(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                if "json" in (self.headers.get("Content-Type") or ""):
                    params: dict[str, Any] = json.loads(raw or "{}")
                else:
                    query = self.path.partition("?")[2]  # GET methods send their arguments here
                    params = {k: v[0] for k, v in parse_qs(raw or query).items()}
                    for key in ("blocks", "attachments"):
                        if isinstance(params.get(key), str):
                            params[key] = json.loads(params[key])
                if fake.delay:
                    time.sleep(fake.delay)
                path = self.path.split("?")[0]
                if path.startswith("/response/"):
                    method, body = path, {"ok": True}
                else:
                    method = path.removeprefix("/api/")
                    body = fake.answer(method, params)
                with fake._lock:
                    fake.calls.append((method, params))
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
