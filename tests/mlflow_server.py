"""A real MLflow tracking server with its model registry (from .venv-mlflow, installed by `make test`)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from app.demo import stack
from tests.conftest import REPO

MLFLOW = Path(os.environ.get("SLOGUARD_TEST_MLFLOW", REPO / ".venv-mlflow" / "bin" / "mlflow"))


# What MLflow's webhooks need to call a test's sloguard on loopback over plain HTTP (by default MLflow
# calls only public https URLs), and the key it encrypts the webhooks' secrets with in its SQL store.
WEBHOOKS_ENV = {
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": base64.urlsafe_b64encode(
        b"sloguard-tests-fernet-key-32byte"
    ).decode(),
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_CACHE_TTL": "1",  # a webhook created by a test is called at once
}


class MlflowServer(stack.MlflowServer):
    def __init__(self, folder: Path, *, webhooks: bool = False) -> None:
        super().__init__(folder, MLFLOW, env=WEBHOOKS_ENV if webhooks else None)
