"""Secrets never show: not in logs (the real `sloguard` process at DEBUG), error messages, /metrics or
any API answer, through start-up, bad requests, config errors, the webhook, Slack and a rollback through
a signed deploy hook. A personal token shows once, in the answer that makes it (`sloguard tokens create`,
`POST /api/v1/tokens`), and nowhere else: not when it is used, misused, refused, revoked or listed.

Every secret gets a distinctive value (personal tokens are random); everything the process and its doors
say is collected and searched for each of them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from app.identity import logic
from tests.conftest import REPO, bearer, pg_schema_url
from tests.fakes.slack import FakeSlack
from tests.security.conftest import slack_headers
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
SECRETS = {
    "api token": "api-TOKEN-4f9c2a71e8d3b6",
    "webhook token": "hook-TOKEN-7b1e5d9a3c02f4",
    "slack bot token": "xoxb-4242-4343-BOTsecret8e1f",
    "slack signing secret": "SIGNsecret-0d6c3b9e1a7f52",
    "elasticsearch api key": "ES-apikey-5a8e2c4f6b1d93",
    "postgresql password": "PGpass-3e7a1c9f5d2b80",
    "deploy hook secret": "DEPLOYsecret-9c2e6a4f8b1d37",
}


def sloguard_yaml(hook_url: str) -> str:
    environments = {
        "prod": {
            "target": {"kind": "http_webhook", "url": hook_url, "secret_env": "DEPLOY_HOOK_SECRET"},
            "rollback": ["U1"],
        }
    }
    return json.dumps({"models": {"fraud-detector": {"environments": environments}}})


class DeployHook:
    """Answers from a script of statuses, and echoes what it received (as a careless system would)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.statuses.pop(0) if hook.statuses else 200
                echo = json.dumps({"headers": dict(self.headers), "body": body.decode()}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(echo)))
                self.end_headers()
                self.wfile.write(echo)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def environment(tmp_path: Path, database_url: str, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLOGUARD_")}
    env.update(
        SLOGUARD_DATABASE_URL=database_url,
        SLOGUARD_API_TOKEN=SECRETS["api token"],
        SLOGUARD_WEBHOOK_TOKEN=SECRETS["webhook token"],
        SLOGUARD_SLACK_BOT_TOKEN=SECRETS["slack bot token"],
        SLOGUARD_SLACK_SIGNING_SECRET=SECRETS["slack signing secret"],
        SLOGUARD_ELASTICSEARCH_URL="http://127.0.0.1:9",
        SLOGUARD_ELASTICSEARCH_API_KEY=SECRETS["elasticsearch api key"],
        SLOGUARD_PROMETHEUS_URL="http://127.0.0.1:9",
        SLOGUARD_CONFIG_FILE=str(tmp_path / "sloguard.yaml"),
        SLOGUARD_SLO_DIR=str(tmp_path / "slo"),
        SLOGUARD_POSTMORTEM_DIR=str(tmp_path / "postmortems"),
        SLOGUARD_SCHEDULER_ENABLED="false",
        SLOGUARD_SOURCE_TIMEOUT="2",
        SLOGUARD_LOG_LEVEL="DEBUG",
        DEPLOY_HOOK_SECRET=SECRETS["deploy hook secret"],
    )
    env.update(overrides)
    return env


@pytest.fixture
def database_url(pg_database: str) -> Iterator[str]:
    """PostgreSQL with a password in the URL (the local server trusts loopback, so any password works)."""
    for url in pg_schema_url(pg_database):
        yield url.replace("postgres@", f"postgres:{SECRETS['postgresql password']}@", 1)


class Transcript:
    """Everything said: process output and every response's status line, headers and body; and the
    secrets to look for, personal tokens added as they are made."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str, str | None]] = []  # where, what was said, the token it may show
        self.secrets = dict(SECRETS)

    def add(self, where: str, text: str, shows: str | None = None) -> None:
        self.parts.append((where, text, shows))

    def response(self, response: httpx.Response, shows: str | None = None) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        request = f"{response.request.method} {response.request.url.path}"
        self.add(request, f"{response.status_code}\n{headers}\n{response.text}", shows)
        return response

    def made(self, name: str, text: str) -> str:
        """The personal token `text` shows (the answer that made it), from now on a secret to look for."""
        # The whole token, not its hint (`sloguard_pat_AbCd…`) that the answer holds too.
        (token,) = re.findall(rf"{logic.PREFIX}[0-9A-Za-z]{{38}}", text)
        assert logic.well_formed(token), text
        self.secrets[name] = token
        return token

    def leaks(self) -> list[str]:
        return [
            f"{name} in {where}: ...{text[max(0, text.find(value) - 120) : text.find(value) + 40]}..."
            for where, text, shows in self.parts
            for name, value in self.secrets.items()
            if value in text and name != shows
        ]


def run_sloguard(
    transcript: Transcript, env: dict[str, str], *args: str, shows: str | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [SLOGUARD, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    transcript.add(f"sloguard {' '.join(args)}", done.stdout + done.stderr, shows)
    return done


ADMIN = "U1"  # U1's admin token, made with the CLI; U1 makes their other tokens through the API


def test_no_secret_appears_anywhere(tmp_path: Path, database_url: str) -> None:
    transcript = Transcript()
    hook = DeployHook()
    (tmp_path / "sloguard.yaml").write_text(sloguard_yaml(hook.url))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with FakeSlack() as slack:
        env = environment(tmp_path, database_url, SLOGUARD_SLACK_API_URL=slack.api_url())
        name = "admin's personal token"
        make = ["tokens", "create", "--user", ADMIN, "--scope", "admin", "--name", "bootstrap"]
        created = run_sloguard(transcript, env, *make, shows=name)
        assert created.returncode == 0, created.stderr
        assert transcript.made(name, created.stdout) == created.stdout.strip()  # on stdout, alone
        log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115  (read back after the process ends)
        process = subprocess.Popen(
            [SLOGUARD, "serve", "--port", str(port)], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, timeout=30, what="serve")
            exercise(base, slack, hook, transcript)
            for listing in (["tokens", "list"], ["tokens", "list", "--json"]):
                listed = run_sloguard(transcript, env, *listing)
                assert listed.returncode == 0, listed.stderr
                # Each token is told apart by its hint (the prefix and four characters), never shown.
                for name in ("admin's personal token", "U1's personal token", "a revoked personal token"):
                    assert logic.hint(transcript.secrets[name]) in listed.stdout, listed.stdout
        finally:
            process.terminate()
            process.wait(timeout=20)
            log.seek(0)
            transcript.add("sloguard serve (stdout and stderr)", log.read())
            log.close()
            hook.close()

    # Configuration mistakes, each next to every secret: the one-line errors must name, not show.
    config_errors = [
        {"SLOGUARD_PROMETHEUS_URL": "prometheus:9090"},
        {"SLOGUARD_API_TOKEN": "changeme"},
        {"SLOGUARD_API_TOKEN": " "},
        {"SLOGUARD_SLACK_SIGNING_SECRET": ""},
        {"SLOGUARD_SLACK_APP_TOKEN": "not-an-app-" + SECRETS["slack bot token"]},
        {"SLOGUARD_DATABASE_URL": f"mysql://sloguard:{SECRETS['postgresql password']}@db/sloguard"},
        {"SLOGUARD_DATABASE_URL": f"postgresql://sloguard:{SECRETS['postgresql password']}@[::1/bad"},
        {"SLOGUARD_DATABASE_URL": f"sloguard:{SECRETS['postgresql password']}@db/sloguard"},
        {"SLOGUARD_EVAL_INTERVAL": "soon"},
    ]
    for overrides in config_errors:
        done = run_sloguard(transcript, environment(tmp_path, database_url, **overrides), "check-config")
        assert done.returncode != 0, (overrides, done.stderr)
    serve_error = environment(tmp_path, database_url, **config_errors[-3])  # serve reports it the same way
    assert run_sloguard(transcript, serve_error, "serve", "--port", str(free_port())).returncode != 0
    # A database that is not there: start-up and `db upgrade` fail, saying so without the password.
    unreachable = database_url.replace(":5432/", f":{free_port()}/")
    assert unreachable != database_url
    for command in (["db", "upgrade"], ["serve", "--port", str(free_port())]):
        done = run_sloguard(transcript, environment(tmp_path, unreachable), *command)
        assert done.returncode != 0

    everything = "\n".join(text for _, text, _ in transcript.parts)
    assert "Application startup complete" in everything  # the transcript holds what it should
    assert "invalid bearer token" in everything
    assert "this token was revoked" in everything and "bearer token refused" in everything
    assert "actor: this credential acts as U1" in everything
    assert len(everything) > 5000
    leaks = transcript.leaks()
    assert not leaks, "\n".join(leaks)


def exercise(base: str, slack: FakeSlack, hook: DeployHook, transcript: Transcript) -> None:
    api = {"Authorization": f"Bearer {SECRETS['api token']}"}  # the automation identity: reads
    webhook = {"Authorization": f"Bearer {SECRETS['webhook token']}"}
    admin = bearer(transcript.secrets["admin's personal token"])
    with httpx.Client(base_url=base, timeout=30) as http:

        def call(method: str, path: str, shows: str | None = None, **kwargs: Any) -> httpx.Response:
            return transcript.response(http.request(method, path, **kwargs), shows)

        for path in ("/healthz", "/readyz", "/openapi.json"):
            call("GET", path)
        # People's tokens, made through the API: each shown in the answer that makes it.
        name = "U1's personal token"
        made = call("POST", "/api/v1/tokens", name, headers=admin, json={"user": "U1", "scope": "change"})
        assert made.status_code == 201, made.text
        person = bearer(transcript.made(name, made.text))
        name = "a revoked personal token"
        made = call("POST", "/api/v1/tokens", name, headers=admin, json={"user": "U1", "scope": "respond"})
        revoked = transcript.made(name, made.text)
        assert call("DELETE", f"/api/v1/tokens/{made.json()['id']}", headers=admin).status_code == 200
        call("GET", "/api/v1/whoami", headers=person)
        call("GET", "/api/v1/tokens", headers=admin)
        # Bad requests of every kind (six refused tokens: below the throttle's ten).
        call("GET", "/api/v1/incidents", headers={"Authorization": f"Bearer {SECRETS['webhook token']}"})
        call("GET", "/api/v1/incidents", headers={"Authorization": f"Bearer {SECRETS['api token']}x"})
        call("GET", "/api/v1/incidents", headers={"Authorization": person["Authorization"] + "x"})
        call("GET", "/api/v1/incidents", headers=bearer(revoked))
        call("POST", "/webhooks/alertmanager", headers=api, json={})
        call("POST", "/webhooks/alertmanager", headers=person, json={})
        call("POST", "/webhooks/alertmanager", headers=webhook, content=b"{not json")
        call("POST", "/webhooks/alertmanager", headers=webhook, json={"version": "3"})
        call("POST", "/api/v1/incidents", headers=api, json={"title": "the automation only reads"})
        call("POST", "/api/v1/tokens", headers=person, json={"user": "U1", "scope": "admin"})
        call("POST", "/api/v1/incidents", headers=person, json={"title": "t", "actor": "U2"})
        call("POST", "/api/v1/incidents", headers=person, json={"title": ""})
        call("POST", "/api/v1/incidents", headers=person, content=b"x" * (2 * 1024 * 1024))
        call("POST", "/api/v1/tokens", headers=admin, json={"user": "nobody", "scope": "root"})
        call("POST", "/api/v1/tokens", headers=admin, json={"user": "U2", "scope": "read"})  # not one's own
        call("GET", "/api/v1/incidents/999", headers=api)
        call("GET", "/nowhere")
        # The webhook, for real.
        firing = json.loads((REPO / "tests/data/alertmanager-0.25-firing.json").read_text())
        firing["commonLabels"]["model"] = "fraud-detector"
        incident = call("POST", "/webhooks/alertmanager", headers=webhook, json=firing).json()["incident_id"]
        # Slack: a command, a forged one, a stale one.
        body = urlencode(
            {
                "command": "/incident",
                "text": "declare Secrets test SEV3",
                "user_id": "U1",
                "channel_id": "C1",
                "response_url": slack.response_url(),
                "trigger_id": "1.2.3",
            }
        )
        signing = SECRETS["slack signing secret"]
        call("POST", "/slack/events", content=body, headers=slack_headers(body, signing))
        call("POST", "/slack/events", content=body, headers=slack_headers(body, "wrong-secret-123"))
        call(
            "POST",
            "/slack/events",
            content=body,
            headers=slack_headers(body, signing, int(time.time()) - 900),
        )
        wait_until(lambda: slack.called("/response/cmd"), what="Slack reply")
        # Rollbacks through the signed deploy hook: one that works, one the hook keeps failing.
        rollback = {"model": "fraud-detector", "confirm": True, "incident_id": incident}
        done = call("POST", "/api/v1/rollbacks", headers=person, json={**rollback, "to_version": "3"}).json()
        assert done["state"] == "succeeded", done
        hook.statuses = [500, 500, 500]
        failed = call(
            "POST", "/api/v1/rollbacks", headers=person, json={**rollback, "to_version": "2"}
        ).json()
        assert failed["state"] == "failed", failed
        for path in (
            f"/api/v1/rollbacks/{done['id']}",
            f"/api/v1/rollbacks/{failed['id']}",
            f"/api/v1/incidents/{incident}",
            f"/api/v1/incidents/{incident}/postmortem",
            "/api/v1/incidents",
            "/api/v1/slos",
        ):
            call("GET", path, headers=api)
        call("GET", f"/api/v1/rollbacks/{done['id']}", headers=person)
        call("POST", f"/api/v1/incidents/{incident}/enrich", headers=person)
        call("GET", "/readyz")
        call("GET", "/metrics")
    for name, params in slack.calls:  # what sloguard told Slack (its token is in a header, not a message)
        transcript.add(f"to Slack {name}", json.dumps(params))
