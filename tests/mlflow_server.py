"""A real MLflow tracking server with its model registry (from .venv-mlflow, installed by `make test`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.servers import free_port, stop_process, wait_until

MLFLOW = Path(os.environ.get("SLOGUARD_TEST_MLFLOW", REPO / ".venv-mlflow" / "bin" / "mlflow"))


class MlflowServer:
    def __init__(self, folder: Path) -> None:
        if not MLFLOW.exists():
            raise RuntimeError(f"{MLFLOW} not found: `make test` installs MLflow into .venv-mlflow")
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        self.log = (self.folder / "mlflow.log").open("wb")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            [
                str(MLFLOW),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.folder / 'mlflow.db'}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.folder,
        )
        wait_until(self._healthy, timeout=120, interval=0.5, what=f"mlflow on {self.url}")
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"mlflow exited: see {self.log.name}")
        return httpx.get(f"{self.url}/health", timeout=2).status_code == 200

    def api(self, method: str, path: str, **kwargs: object) -> dict[str, object]:
        response = httpx.request(method, f"{self.url}/api/2.0/mlflow/{path}", timeout=10, **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        body: dict[str, object] = response.json()
        return body

    def register(self, name: str, versions: int) -> None:
        self.api("POST", "registered-models/create", json={"name": name})
        for number in range(1, versions + 1):
            self.api(
                "POST", "model-versions/create", json={"name": name, "source": f"s3://models/{name}/{number}"}
            )

    def stop(self) -> None:
        stop_process(self.process, getattr(self, "log", None))
