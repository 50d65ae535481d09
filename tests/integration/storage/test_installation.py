"""Storage that notices: a database removed or replaced under a running service is refused (503), never
written into blindly and never re-migrated while the service runs."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app import db
from app.main import create_app
from tests.alertmanager import group_notification
from tests.conftest import API_TOKEN, PG_ADMIN_URL, PG_HOST, PG_PORT, WEBHOOK_TOKEN, make_settings
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
WEBHOOK = "/webhooks/alertmanager"


def installation_rows(url: str) -> list[tuple[str, object]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [
                tuple(row) for row in connection.execute(sa.text("SELECT id, created_at FROM installation"))
            ]
    finally:
        engine.dispose()


def tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


# ---------------------------------------------------------------- the installation row


def test_a_database_migrated_from_0007_gets_one_installation_row(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine, "0007")
        db.upgrade(engine)
        (first,) = installation_rows(database_url)
        assert uuid.UUID(first[0]).version == 4
        db.upgrade(engine)  # at head already: nothing written again
        assert installation_rows(database_url) == [first]
        assert db.remember_installation(engine) == first[0]
    finally:
        engine.dispose()


def test_two_new_databases_are_two_installations(tmp_path: Path) -> None:
    ids = []
    for name in ("one", "two"):
        url = f"sqlite:///{tmp_path / name}.db"
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        ((found, _),) = installation_rows(url)
        ids.append(found)
    assert ids[0] != ids[1]


# ---------------------------------------------------------------- SQLite: the folder removed


def test_sqlite_folder_removed_under_a_running_service_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    database = folder / "sloguard.db"
    settings = make_settings(tmp_path, database_url=f"sqlite:///{database}")
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.post(WEBHOOK, json=group_notification(1, 2), headers=HOOK).status_code == 200
        assert http.get("/readyz").status_code == 200

        shutil.rmtree(folder)  # open connections would go on writing into the deleted file
        after = [http.post(WEBHOOK, json=group_notification(group, 2), headers=HOOK) for group in (2, 3, 4)]
        after += [http.get("/api/v1/incidents", headers=AUTH), http.get("/readyz")]
        folder.mkdir()  # someone puts the folder back: still not the database the service started on
        after += [http.post(WEBHOOK, json=group_notification(5, 2), headers=HOOK), http.get("/readyz")]

        assert [response.status_code for response in after] == [503] * len(after)
        for response in after:
            reason = response.json().get("detail") or response.json()["database"]
            assert f"the database at {database} was replaced or removed" in reason
            assert "restart sloguard after restoring it" in reason
        assert http.get("/readyz").json()["status"] == "not ready"
        assert http.get("/healthz").status_code == 200  # alive: an orchestrator must not loop restarts
    assert not database.exists()  # nothing was created, let alone migrated, in the folder put back


# ---------------------------------------------------------------- PostgreSQL: dropped and re-created


@pytest.fixture
def dedicated_database() -> Iterator[tuple[str, str]]:
    """A database of its own (name, URL): the test drops and re-creates it."""
    name = f"sloguard_replaced_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield name, f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def recreate(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def refused_everywhere(http: httpx.Client, incident_id: int, where: str) -> list[str]:
    """Webhook, API and /readyz after the swap: every answer a 503 with the reason; the reasons."""
    answers = [
        http.post(WEBHOOK, json=group_notification(2, 2), headers=HOOK),
        http.post(WEBHOOK, json=group_notification(1, 3), headers=HOOK),
        http.get("/api/v1/incidents", headers=AUTH),
        http.get(f"/api/v1/incidents/{incident_id}", headers=AUTH),
        http.get("/readyz"),
    ]
    assert [answer.status_code for answer in answers] == [503] * len(answers), [a.text for a in answers]
    reasons = [answer.json().get("detail") or answer.json()["database"] for answer in answers]
    for reason in reasons:
        assert f"the database at {where} was replaced or removed" in reason
    return reasons


def test_postgresql_database_dropped_and_recreated_empty_is_refused_not_remigrated(
    dedicated_database: tuple[str, str], tmp_path: Path
) -> None:
    name, url = dedicated_database
    settings = make_settings(tmp_path, database_url=url)
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        accepted = http.post(WEBHOOK, json=group_notification(1, 2), headers=HOOK)
        assert accepted.status_code == 200
        assert http.get("/readyz").status_code == 200

        recreate(name)
        reasons = refused_everywhere(
            http, accepted.json()["incident_id"], f"postgresql://{PG_HOST}:{PG_PORT}/{name}"
        )
        assert any("installation table is gone" in reason for reason in reasons)
        assert tables(url) == []  # the empty database stays empty while this service runs


def test_postgresql_database_replaced_by_another_installation_is_refused(
    dedicated_database: tuple[str, str], tmp_path: Path
) -> None:
    name, url = dedicated_database
    settings = make_settings(tmp_path, database_url=url)
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        accepted = http.post(WEBHOOK, json=group_notification(1, 2), headers=HOOK)
        assert accepted.status_code == 200
        ((ours, _),) = installation_rows(url)
        assert http.get("/readyz").json()["installation"] == ours

        recreate(name)
        other = db.make_engine(url)  # another replica, restarted meanwhile, migrates the new database
        db.upgrade(other)
        other.dispose()
        ((theirs, _),) = installation_rows(url)
        reasons = refused_everywhere(
            http, accepted.json()["incident_id"], f"postgresql://{PG_HOST}:{PG_PORT}/{name}"
        )
        assert any(f"installation {ours} expected, found {theirs}" in reason for reason in reasons)

    # A service started afresh takes the database as it finds it: its installation, empty of incidents.
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        ready = http.get("/readyz")
        assert (ready.status_code, ready.json()["installation"]) == (200, theirs)
        assert http.get("/api/v1/incidents", headers=AUTH).json() == []
