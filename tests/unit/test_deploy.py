"""deploy/Dockerfile, checked without a container engine: parsed (dockerfile-parse) and linted (hadolint,
where its wheel exists). The Kubernetes manifests are rendered and checked in
tests/integration/test_kubernetes.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from app import db
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
BASE_DEPLOYMENT = DEPLOY / "kubernetes" / "base" / "deployment.yaml"


# ---------------------------------------------------------------- Dockerfile


def stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def exec_form(instruction: dict[str, Any]) -> list[str]:
    value: list[str] = yaml.safe_load(instruction["value"])  # a JSON array is YAML too
    return value


def test_dockerfile_is_multi_stage_with_a_builder_venv_and_a_slim_runtime() -> None:
    parser = DockerfileParser(path=str(DOCKERFILE))
    assert parser.is_multistage
    builder, runtime = stages(parser)
    assert builder[0]["value"].endswith("AS builder")
    assert any("python -m venv" in i["value"] for i in builder if i["instruction"] == "RUN")
    assert any("--from=builder" in i["value"] for i in runtime if i["instruction"] == "COPY")
    # The base image is an ARG: its default must be a slim Python image.
    (default,) = [
        i["value"] for i in parser.structure if i["instruction"] == "ARG" and "PYTHON_IMAGE" in i["value"]
    ]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.1[1-9]-slim(-\w+)?", default)


def test_dockerfile_runs_sloguard_serve_as_a_non_root_user_with_a_healthcheck() -> None:
    _, runtime = stages(DockerfileParser(path=str(DOCKERFILE)))
    last = {i["instruction"]: i for i in runtime}  # the last of each instruction wins
    user = last["USER"]["value"].split(":")[0]
    assert user not in ("root", "0")
    assert exec_form(last["ENTRYPOINT"]) + exec_form(last["CMD"])[:1] == ["sloguard", "serve"]
    command = exec_form(last["CMD"])
    port = command[command.index("--port") + 1]
    assert last["EXPOSE"]["value"] == port
    assert "/healthz" in last["HEALTHCHECK"]["value"] and f":{port}/" in last["HEALTHCHECK"]["value"]
    (container,) = yaml.safe_load(BASE_DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"]
    assert str(container["ports"][0]["containerPort"]) == port


def test_the_image_carries_the_migrations_where_the_app_looks_for_them() -> None:
    """The migrations are package data (app/migrations), so the image's regular install carries them."""
    assert db.ALEMBIC_DIR == REPO / "app" / "migrations"
    text = DOCKERFILE.read_text()
    assert "COPY app/ ./app/" in text and "alembic" not in text
    assert "pip install ." in text and "--editable" not in text


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parents decides."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        for part in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
            out += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        return re.compile(out)

    verdict = False
    for raw in patterns:
        negate, pattern = raw.startswith("!"), raw.lstrip("!")
        parts = path.split("/")
        candidates = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
        if any(regex(pattern).fullmatch(candidate) for candidate in candidates):
            verdict = not negate
    return verdict


def test_dockerignore_lets_in_what_the_dockerfile_copies_and_nothing_secret() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for instruction in DockerfileParser(path=str(DOCKERFILE)).structure:
        if instruction["instruction"] == "COPY" and "--from" not in instruction["value"]:
            copied += instruction["value"].split()[:-1]
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        sample = next((p for p in (REPO / source).rglob("*.py")), REPO / source)
        assert not ignored(str(sample.relative_to(REPO)), patterns), sample
    for secret in (".git/config", ".venv/bin/python", "sloguard.db", "tests/conftest.py", ".env"):
        assert ignored(secret, patterns), secret
    assert ignored("app/__pycache__/main.cpython-311.pyc", patterns)


@pytest.mark.skipif(
    shutil.which("hadolint", path=str(Path(sys.executable).parent)) is None, reason="no hadolint"
)
def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
