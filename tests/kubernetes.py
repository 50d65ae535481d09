"""deploy/kubernetes rendered as a user renders it: the tree copied, the overlay's secrets.env filled in
from its example with real-looking values, then `kubectl kustomize` (the kustomize that ships with
kubectl). The Makefile's `kubectl` target says what to install where kubectl is missing."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

KUBE = REPO / "deploy" / "kubernetes"
OVERLAYS = ("sqlite", "postgresql")
COMPONENT = "components/prometheus-operator"
# Values sloguard accepts (the examples' placeholders it refuses at start-up).
FILLED_IN = {
    "database-url": "postgresql://sloguard:s3cr3t-pw@postgres:5432/sloguard",
    "api-token": "api-" + "7f3a9c" * 6,
    "webhook-token": "hook-" + "1b2e8d" * 6,
    "slack-bot-token": "xoxb-1234-5678-abcdefghijkl",
    "slack-signing-secret": "8f14e45fceea167a5a36dedd4bea2543",
    "slack-app-token": "xapp-1-A0123-4567-abcdef0123456789",
    "elasticsearch-api-key": "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
    "mlflow-webhook-secret": "mlflow-" + "5d41402abc4b" * 3,
}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: install kubectl >= 1.27 (kustomize v5); see the Makefile's kubectl")
    return found


def env_file(path: Path) -> dict[str, str]:
    """An env file as kustomize reads it: KEY=VALUE lines, `#` comments and blank lines skipped."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value
    return out


def example_secrets(overlay: str) -> dict[str, str]:
    return env_file(KUBE / "overlays" / overlay / "secrets.env.example")


def copy_tree(folder: Path) -> Path:
    root = folder / "kubernetes"
    shutil.copytree(KUBE, root)
    return root


def fill_in(root: Path, overlay: str, values: dict[str, str] | None = None) -> None:
    """secrets.env from the example: every key it lists, with `values` (default: FILLED_IN)."""
    chosen = FILLED_IN if values is None else values
    lines = [f"{key}={chosen[key]}" for key in example_secrets(overlay)]
    (root / "overlays" / overlay / "secrets.env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def kustomize(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )


def render(folder: Path, overlay: str, *, component: bool = False) -> list[dict[str, Any]]:
    """The overlay's objects, with the Prometheus Operator Component added the way the overlay's
    comment says (uncommented) when `component`."""
    root = copy_tree(folder)
    fill_in(root, overlay)
    if component:
        path = root / "overlays" / overlay / "kustomization.yaml"
        text = path.read_text(encoding="utf-8")
        commented = f"# components:\n#   - ../../{COMPONENT}\n"
        assert commented in text, f"{path}: the commented components entry is gone"
        path.write_text(text.replace(commented, f"components:\n  - ../../{COMPONENT}\n"), encoding="utf-8")
    result = kustomize(root / "overlays" / overlay)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


def config_map(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """A generated ConfigMap by the name it was generated as (kustomize appends a content hash)."""
    (found,) = [
        doc
        for doc in docs
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].rsplit("-", 1)[0] == name
    ]
    return found


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
