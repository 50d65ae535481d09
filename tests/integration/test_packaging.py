"""The built package carries what it needs at run time: migrations, templates, typing marker."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_the_wheel_carries_the_migrations_and_templates(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("sloguard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    revisions = sorted(p.name for p in (REPO / "app" / "migrations" / "versions").glob("*.py"))
    assert revisions and {f"app/migrations/versions/{name}" for name in revisions} <= names
    assert {"app/migrations/env.py", "app/migrations/script.py.mako", "app/py.typed"} <= names
    assert "app/postmortems/templates/postmortem.md.j2" in names
    web = REPO / "app" / "web"
    console = [p.relative_to(REPO).as_posix() for d in ("templates", "static") for p in (web / d).iterdir()]
    assert any(name.endswith(".html") for name in console) and "app/web/static/console.js" in console
    assert set(console) <= names, set(console) - names
