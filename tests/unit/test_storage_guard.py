"""The storage guard's decisions, on real files: what counts as the same database, and what a refusal says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from app.db import StorageGuard, describe_database
from app.errors import StorageReplaced


def test_a_database_is_described_without_its_user_password_or_options() -> None:
    url = make_url("postgresql+psycopg://sloguard:s3cr%40t@db.internal:6432/incidents?sslmode=require")
    assert describe_database(url) == "postgresql://db.internal:6432/incidents"


def test_a_sqlite_database_is_described_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert describe_database(make_url("sqlite:///./data/sloguard.db")) == f"{tmp_path}/data/sloguard.db"
    assert describe_database(make_url("sqlite://")) == "an in-memory SQLite database"


def pinned(path: Path) -> StorageGuard:
    guard = StorageGuard(str(path), str(path))
    guard.pin("0d5f3a4e-0000-4000-8000-000000000001")
    return guard


def test_the_same_file_passes_and_a_removed_one_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "sloguard.db"
    database.write_bytes(b"sqlite")
    guard = pinned(database)
    guard.check_file()
    database.unlink()
    with pytest.raises(StorageReplaced, match=f"the database at {database} was replaced or removed"):
        guard.check_file()


def test_another_file_moved_into_its_place_is_refused(tmp_path: Path) -> None:
    database, restored = tmp_path / "sloguard.db", tmp_path / "restored.db"
    database.write_bytes(b"sqlite")
    restored.write_bytes(b"sqlite")
    guard = pinned(database)
    os.replace(restored, database)  # same path, same bytes, another inode
    with pytest.raises(StorageReplaced, match="another file is in its place"):
        guard.check_file()


def test_nothing_is_checked_before_the_guard_is_pinned(tmp_path: Path) -> None:
    guard = StorageGuard(str(tmp_path / "not-yet.db"), str(tmp_path / "not-yet.db"))
    guard.check_file()  # the first migration creates the file
    guard.check_ids(None)


def test_the_installation_must_be_the_one_row_seen_at_start(tmp_path: Path) -> None:
    database = tmp_path / "sloguard.db"
    database.write_bytes(b"sqlite")
    guard = pinned(database)
    guard.check_ids(["0d5f3a4e-0000-4000-8000-000000000001"])
    with pytest.raises(StorageReplaced, match="its installation table is gone"):
        guard.check_ids(None)
    with pytest.raises(StorageReplaced, match="expected, found none"):
        guard.check_ids([])
    with pytest.raises(StorageReplaced, match="expected, found 9f"):
        guard.check_ids(["9f"])
    with pytest.raises(StorageReplaced, match="restart sloguard after restoring it"):
        guard.check_ids(["0d5f3a4e-0000-4000-8000-000000000001", "9f"])
