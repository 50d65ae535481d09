"""The demo's stand-in for Slack: a local Web API that prints each message as readable text.

sloguard talks to it through slack-sdk exactly as to slack.com (its `base_url` is
SLOGUARD_SLACK_API_URL); messages, updates, thread replies and command answers (response_url) are shown
in the terminal instead of a Slack channel.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.segment import SegmentLines
from rich.text import Text

CHANNEL_NAMES = {"C-INCIDENTS": "#incidents"}
USER_NAMES = {"U0ALICE": "alice", "U0BOB": "bob", "UBOT": "sloguard"}


def plain(mrkdwn: str) -> str:
    """Slack mrkdwn as terminal text: <@U1> -> @name, <url|label> -> label, entities decoded."""
    text = re.sub(r"<@([A-Z0-9-]+)(?:\|[^>]*)?>", lambda m: "@" + USER_NAMES.get(m[1], m[1]), mrkdwn)
    text = re.sub(r"<#([A-Z0-9-]+)(?:\|([^>]*))?>", lambda m: "#" + (m[2] or m[1]), text)
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2", text)
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# Slack's names for the colours sloguard marks severities with, for terminals.
EMOJI = {
    ":red_circle:": "🔴",
    ":large_orange_circle:": "🟠",
    ":large_yellow_circle:": "🟡",
    ":large_blue_circle:": "🔵",
    ":white_circle:": "⚪",
}


def styled(mrkdwn: str) -> str:
    """mrkdwn as rich markup: *bold* and _italic_ kept, anything that looks like markup escaped."""
    text = escape(plain(mrkdwn))
    for code, emoji in EMOJI.items():
        text = text.replace(code, emoji)
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"[bold]\1[/bold]", text)
    return re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"[italic]\1[/italic]", text)


def render_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append("[bold]" + escape(plain(block.get("text", {}).get("text", ""))) + "[/bold]")
        elif kind == "section":
            if text := block.get("text", {}).get("text"):
                lines.append(styled(text))
            for field in block.get("fields", []):
                lines.append("  " + styled(field.get("text", "")).replace("\n", " "))
        elif kind == "context":
            lines.append("  " + "  ".join(styled(e.get("text", "")) for e in block.get("elements", [])))
        elif kind == "actions":
            buttons = [escape(f"[ {e.get('text', {}).get('text', '?')} ]") for e in block.get("elements", [])]
            lines.append(" ".join(buttons))
        elif kind == "divider":
            lines.append("─" * 40)
    return lines


class ConsoleSlack:
    """Answers the Web API methods sloguard calls and prints what a person in the channel would see."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self._ts = 1_764_000_000
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.url}/response/{name}"

    def called(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [params for name, params in self.calls if name == method]

    def show(self, method: str, params: dict[str, Any]) -> None:
        channel = CHANNEL_NAMES.get(str(params.get("channel")), str(params.get("channel", "")))
        text = "\n".join(render_blocks(params.get("blocks") or [])) or styled(str(params.get("text", "")))
        if method == "chat.postMessage" and params.get("thread_ts"):
            self.console.print(
                f"  [cyan]slack {channel} › thread[/cyan]  {styled(str(params.get('text', '')))}"
            )
        elif method == "chat.postMessage":
            self.box(text, f"slack {channel} · sloguard")
        elif method == "chat.update":
            first = styled(str(params.get("text", "")).splitlines()[0]) if params.get("text") else ""
            self.console.print(f"  [cyan]slack {channel} › message updated[/cyan]  {first}")
        elif method.startswith("/response/"):
            private = params.get("response_type") != "in_channel"
            where = "only you see" if private else "in channel"
            self.box(text, f"slack · sloguard ({where})")

    def box(self, markup: str, title: str) -> None:
        """A bordered message. A terminal wraps its lines inside the box at the terminal's width; a pipe
        or a log has no width to keep to, so the box is as wide as its longest line: nothing is cut or
        broken (a file path stays whole for the reader to copy)."""
        panel = Panel(markup, title=title, title_align="left", style="cyan")
        if self.console.is_terminal:
            self.console.print(panel)
            return
        lines = Text.from_markup(markup).plain.splitlines() or [""]
        # Two borders and a space of padding each side; the title sits in the top border.
        widest = max(max(cell_len(line) for line in lines) + 4, cell_len(title) + 6)
        options = self.console.options.update_width(max(self.console.width, widest))
        rendered = self.console.render_lines(panel, options, new_lines=False)
        self.console.print(SegmentLines(rendered, new_lines=True), crop=False, soft_wrap=True)

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": "UBOT",
                "team_id": "T-DEMO",
                "bot_id": "B-DEMO",
                "url": "http://demo/",
            }
        if method == "chat.postMessage":
            with self.lock:
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
            return {"ok": True, "messages": []}
        if method == "conversations.create":
            return {"ok": True, "channel": {"id": "C-NEW", "name": params.get("name")}}
        if method in ("conversations.invite", "chat.postEphemeral", "reactions.add", "pins.add"):
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}

    def __enter__(self) -> ConsoleSlack:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                if "json" in (self.headers.get("Content-Type") or ""):
                    params: dict[str, Any] = json.loads(raw or "{}")
                else:
                    query = self.path.partition("?")[2]
                    params = {k: v[0] for k, v in parse_qs(raw or query).items()}
                    for key in ("blocks", "attachments"):
                        if isinstance(params.get(key), str):
                            params[key] = json.loads(params[key])
                path = self.path.split("?")[0]
                if path.startswith("/response/"):
                    method, body = path, {"ok": True}
                else:
                    method = path.removeprefix("/api/")
                    body = owner.answer(method, params)
                with owner.lock:
                    owner.calls.append((method, params))
                owner.show(method, params)
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
