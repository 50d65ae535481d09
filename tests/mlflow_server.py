"""A real MLflow tracking server with its model registry (from .venv-mlflow, installed by `make test`)."""

from __future__ import annotations

import os
from pathlib import Path

from app.demo import stack
from tests.conftest import REPO

MLFLOW = Path(os.environ.get("SLOGUARD_TEST_MLFLOW", REPO / ".venv-mlflow" / "bin" / "mlflow"))


class MlflowServer(stack.MlflowServer):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder, MLFLOW)
