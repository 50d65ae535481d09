"""Personal tokens as an operator meets them: `sloguard tokens` on the command line, `sloguard serve`
processes that honour them (a revocation at once on every replica of one PostgreSQL), and failed attempts
throttled per client address without a token ever reaching a log line or /metrics."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import WEBHOOK_TOKEN, bearer, pg_schema_url
from tests.integration.replicas.test_replicas import Replica
from tests.servers import wait_until

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
# The documented shape (README "Tokens and scopes"), written out here rather than taken from the code.
SHAPE = re.compile(r"^sloguard_pat_[0-9A-Za-z]{38}$")


def environment(folder: Path, database_url: str, **extra: str) -> dict[str, str]:
    (folder / "slo").mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")}
    return base | {
        "SLOGUARD_DATABASE_URL": database_url,
        "SLOGUARD_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "SLOGUARD_PROMETHEUS_URL": "http://127.0.0.1:9",
        "SLOGUARD_SLO_DIR": str(folder / "slo"),
        "SLOGUARD_RUNBOOK_DIR": str(folder / "runbooks"),
        "SLOGUARD_POSTMORTEM_DIR": str(folder / "postmortems"),
        "SLOGUARD_CONFIG_FILE": str(folder / "sloguard.yaml"),
        "SLOGUARD_SCHEDULER_ENABLED": "false",
        "SLOGUARD_LOG_FORMAT": "json",
        **extra,
    }


def sloguard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SLOGUARD, *args], env=env, capture_output=True, text=True, timeout=60)


def create(env: dict[str, str], *args: str) -> str:
    made = sloguard(env, "tokens", "create", *args)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def listed(env: dict[str, str]) -> list[dict[str, Any]]:
    found = sloguard(env, "tokens", "list", "--json")
    assert found.returncode == 0, found.stderr
    return [json.loads(line) for line in found.stdout.splitlines()]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Replica]]:
    """Replicas the test starts (stopped afterwards, their logs shown when it failed)."""
    replicas: list[Replica] = []
    yield replicas
    for replica in replicas:
        replica.stop()
        sys.stdout.write(f"--- {replica.log_path.name} ---\n{replica.log_path.read_text()[-4000:]}\n")


def start(started: list[Replica], folder: Path, env: dict[str, str]) -> Replica:
    replica = Replica(folder, env, f"sloguard-{len(started)}")
    started.append(replica)
    wait_until(replica.ready, timeout=60, interval=0.2, what=f"sloguard on {replica.url}")
    return replica


def whoami(replica: Replica, token: str) -> httpx.Response:
    return httpx.get(f"{replica.url}/api/v1/whoami", headers=bearer(token), timeout=10)


def test_a_token_from_the_cli_acts_as_its_owner_until_it_is_revoked(
    tmp_path: Path, started: list[Replica]
) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'sloguard.db'}")
    made = sloguard(env, "tokens", "create", "--user", "U0ANA", "--scope", "respond", "--name", "laptop")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert SHAPE.match(token), token  # alone on stdout, so `$(sloguard tokens create …)` holds just it
    in_90_days = datetime.now(UTC) + timedelta(days=90)
    told = made.stderr.splitlines()[-1]  # after the first start's "empty database" warning
    assert told.startswith("token 1 for U0ANA (respond), expires "), told
    assert told.split("expires ")[1][:10] == f"{in_90_days:%Y-%m-%d}", told
    # Only its SHA-256 is stored.
    stored = (tmp_path / "sloguard.db").read_bytes()
    assert token.encode() not in stored and token[-38:].encode() not in stored
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored

    replica = start(started, tmp_path, env)
    me = whoami(replica, token)
    assert me.status_code == 200, me.text
    assert me.json() == {"actor": "U0ANA", "via": "token", "token_id": 1, "scope": "respond"}
    posted = httpx.post(
        f"{replica.url}/api/v1/incidents", json={"title": "scores wrong"}, headers=bearer(token), timeout=10
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["timeline"][0]["actor"] == "U0ANA"

    (row,) = listed(env)
    assert {k: row[k] for k in ("id", "user", "scope", "name", "state", "created_by", "hint")} == {
        "id": 1,
        "user": "U0ANA",
        "scope": "respond",
        "name": "laptop",
        "state": "active",
        "created_by": "cli",
        "hint": token[:17] + "…",
    }
    assert "token" not in row and "token_hash" not in row
    first_use = row["last_used_at"]
    assert first_use is not None
    # Used again within the minute: the last use is not written again.
    assert whoami(replica, token).status_code == 200
    assert listed(env)[0]["last_used_at"] == first_use
    table = sloguard(env, "tokens", "list")
    assert token not in table.stdout and "laptop" in table.stdout and "active" in table.stdout

    revoked = sloguard(env, "tokens", "revoke", "1")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith("token 1 of U0ANA revoked at ")
    refused = whoami(replica, token)
    assert (refused.status_code, refused.json()) == (401, {"detail": "this token was revoked"})
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert (listed(env)[0]["state"], listed(env)[0]["revoked_by"]) == ("revoked", "cli")
    assert sloguard(env, "tokens", "revoke", "99").stderr == "sloguard: token 99 not found\n"


def test_bad_token_requests_name_the_field_and_make_nothing(tmp_path: Path) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'sloguard.db'}")
    for args, says in (
        (["--user", "U0ANA", "--scope", "root"], "scope: one of read, respond, change, admin (got 'root')"),
        (["--user", "alice", "--scope", "read"], "user: a Slack user ID such as U0ANA (got 'alice')"),
        (["--user", "U0ANA\n", "--scope", "read"], "user: a Slack user ID such as U0ANA (got 'U0ANA\\n')"),
        (["--user", "U0ANA", "--scope", "read", "--expires", "soon"], "expires: not a duration"),
        (["--user", "U0ANA", "--scope", "read", "--expires", "99999d"], "expires: at most 3660d"),
        (["--user", "U0ANA", "--scope", "read", "--name", "tab\there"], "name: no control characters"),
    ):
        refused = sloguard(env, "tokens", "create", *args)
        assert refused.returncode == 2, (args, refused.stdout)
        assert refused.stderr.startswith(f"sloguard: {says}"), (args, refused.stderr)
        assert refused.stdout == ""
    assert sloguard(env, "tokens", "list").stdout.startswith("no tokens")


def test_an_expired_token_is_refused(tmp_path: Path, started: list[Replica]) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'sloguard.db'}")
    lasting = create(env, "--user", "U0ANA", "--scope", "read", "--expires", "never")
    brief = create(env, "--user", "U0BOB", "--scope", "read", "--expires", "2s")
    replica = start(started, tmp_path, env)
    assert whoami(replica, lasting).status_code == 200
    # Asking the list (not the server) when it has expired keeps the refusals below the throttle.
    wait_until(lambda: listed(env)[1]["state"] == "expired", timeout=20, interval=0.5, what="token expiry")
    # A stale script keeps presenting it: refused every time, never throttled (it is no guess).
    for _ in range(15):
        expired = whoami(replica, brief)
        assert (expired.status_code, expired.json()) == (401, {"detail": "this token has expired"})
    assert [row["expires_at"] for row in listed(env)][0] is None
    assert whoami(replica, lasting).status_code == 200


def test_a_revoked_token_is_refused_at_once_through_another_replica(
    tmp_path: Path, pg_database: str, started: list[Replica]
) -> None:
    for url in pg_schema_url(pg_database):
        env = environment(tmp_path, url)
        admin = create(env, "--user", "U0ADM", "--scope", "admin")
        ana = create(env, "--user", "U0ANA", "--scope", "change")
        one, other = start(started, tmp_path, env), start(started, tmp_path, env)
        assert whoami(one, ana).status_code == 200 and whoami(other, ana).status_code == 200
        (ana_row,) = [row for row in listed(env) if row["user"] == "U0ANA"]
        assert ana_row["last_used_at"] is not None  # written by a replica, on PostgreSQL

        revoked = httpx.delete(f"{one.url}/api/v1/tokens/{ana_row['id']}", headers=bearer(admin), timeout=10)
        assert revoked.status_code == 200, revoked.text
        assert (revoked.json()["state"], revoked.json()["revoked_by"]) == ("revoked", "U0ADM")
        refused = whoami(other, ana)  # the very next request, on the other replica
        assert (refused.status_code, refused.json()) == (401, {"detail": "this token was revoked"})
        assert whoami(one, ana).status_code == 401
        assert whoami(other, admin).status_code == 200
        for replica in started:
            replica.stop()


def wrong_tokens() -> list[str]:
    """Twenty wrong credentials of every shape: well-formed personal tokens nobody made, ones with a
    broken checksum, and things that are not tokens at all."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    shaped = ["sloguard_pat_" + "".join(secrets.choice(alphabet) for _ in range(38)) for _ in range(8)]
    others = [secrets.token_hex(24) for _ in range(6)] + [f"xoxb-{secrets.token_hex(8)}" for _ in range(6)]
    return shaped + others


def test_twenty_wrong_tokens_from_one_address_are_throttled_and_never_logged(
    tmp_path: Path, started: list[Replica]
) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'sloguard.db'}")
    good = create(env, "--user", "U0ANA", "--scope", "read")
    replica = start(started, tmp_path, env)
    wrong = wrong_tokens()
    answers = []
    for number, token in enumerate(wrong):
        # A forged X-Forwarded-For does not move the caller to another address: no proxy is trusted here.
        spoof = {"X-Forwarded-For": f"198.51.100.{number}"}
        answers.append(
            httpx.get(f"{replica.url}/api/v1/incidents", headers=bearer(token) | spoof, timeout=10)
        )
    assert [a.status_code for a in answers] == [401] * 10 + [429] * 10
    assert {a.json()["detail"] for a in answers[:10]} == {"invalid bearer token"}
    for throttled in answers[10:]:
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        assert throttled.json()["detail"].startswith(
            "too many failed token attempts from 127.0.0.1; retry in "
        )
    # While throttled, this address is not heard on the API, even with a good token; the webhook door
    # counts its own failures, so API guesses never cost Alertmanager its notifications.
    assert whoami(replica, good).status_code == 429
    hook = httpx.post(
        f"{replica.url}/webhooks/alertmanager", json={}, headers=bearer(WEBHOOK_TOKEN), timeout=10
    )
    assert hook.status_code == 422, hook.text  # heard: the empty body is refused for what it is
    # Another address is.
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=10) as elsewhere:
        me = elsewhere.get(f"{replica.url}/api/v1/whoami", headers=bearer(good))
        assert me.status_code == 200, me.text

    metrics = httpx.get(f"{replica.url}/metrics", timeout=10).text
    assert 'sloguard_auth_failures_total{door="api",reason="unknown"} 10.0' in metrics
    assert 'sloguard_auth_throttled_total{door="api"} 11.0' in metrics
    assert 'sloguard_auth_throttled_total{door="webhook"}' not in metrics
    replica.stop()
    log = replica.log_path.read_text()
    refusals = [json.loads(line) for line in log.splitlines() if '"bearer token refused"' in line]
    assert [(r["client"], r["door"], r["reason"]) for r in refusals] == [("127.0.0.1", "api", "unknown")] * 10
    for secret in [*wrong, good]:
        for text in (log, metrics):
            assert secret not in text and secret[-20:] not in text


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_throttled(
    tmp_path: Path, started: list[Replica]
) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'sloguard.db'}", SLOGUARD_TRUSTED_PROXIES="127.0.0.1")
    good = create(env, "--user", "U0ANA", "--scope", "read")
    replica = start(started, tmp_path, env)

    def call(client: str, token: str) -> int:
        headers = bearer(token) | {"X-Forwarded-For": client}
        return httpx.get(f"{replica.url}/api/v1/whoami", headers=headers, timeout=10).status_code

    assert [call("203.0.113.5", token) for token in wrong_tokens()[:11]] == [401] * 10 + [429]
    assert call("203.0.113.5", good) == 429
    assert call("203.0.113.6", good) == 200  # the proxy's other clients are not locked out
    replica.stop()
    clients = {
        json.loads(line)["client"] for line in replica.log_path.read_text().splitlines() if "refused" in line
    }
    assert clients == {"203.0.113.5"}
