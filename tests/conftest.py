"""Shared fixtures: settings, both database engines, an app client. Servers live in tests/servers.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.config import Settings
from app.main import create_app
from tests.servers import UvicornThread

PG_HOST = os.environ.get("SLOGUARD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SLOGUARD_TEST_PG_PORT", "5432"))
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"
API_TOKEN = "test-api-token-0123456789abcdef"
WEBHOOK_TOKEN = "test-webhook-token-0123456789abcdef"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"sloguard_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_schema_url(database_url: str) -> Iterator[str]:
    """A URL whose connections see only a new, empty schema (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{database_url}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend, one per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sloguard.db'}"
    else:
        yield from pg_schema_url(request.getfixturevalue("pg_database"))


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'sloguard.db'}",
        "api_token": API_TOKEN,
        "webhook_token": WEBHOOK_TOKEN,
        "prometheus_url": "http://127.0.0.1:9",  # discard port: nothing listens unless a test says so
        "slo_dir": tmp_path / "slo",
        "runbook_dir": tmp_path / "runbooks",
        "postmortem_dir": tmp_path / "postmortems",
        "config_file": tmp_path / "sloguard.yaml",
        "scheduler_enabled": False,
        "source_timeout": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


def personal_token(database_url: str, user: str, scope: str = "change", **fields: Any) -> str:
    """A personal token of `user`, made in the database at `database_url` the way `sloguard tokens create`
    makes one (the database is migrated first if the server has not started on it yet)."""
    from datetime import UTC, datetime

    from app import db
    from app.identity import service as identity

    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        values = {"name": "test", "expires": "1d", "created_by": "test"} | fields
        _, token = identity.create(engine, user=user, scope=scope, now=datetime.now(UTC), **values)
    finally:
        engine.dispose()
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class People:
    """Authorization headers for the people a test acts as: one personal token each (per scope), made on
    first use in the test's database."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._made: dict[tuple[str, str], dict[str, str]] = {}

    def __call__(self, user: str, scope: str = "change") -> dict[str, str]:
        if (user, scope) not in self._made:
            self._made[user, scope] = bearer(personal_token(self.database_url, user, scope))
        return self._made[user, scope]


@pytest.fixture
def people(settings: Settings) -> People:
    return People(settings.database_url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url=database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[httpx.Client]:
    """The app served by uvicorn on loopback, and an httpx client pointed at it."""
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(autouse=True)
def _no_sloguard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests configure sloguard explicitly; a developer's exported SLOGUARD_* must not leak in."""
    for key in list(os.environ):
        if key.startswith("SLOGUARD_") and not key.startswith("SLOGUARD_TEST_"):
            monkeypatch.delenv(key)
