from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mlflow_server import MlflowServer


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    server.register("fraud-detector", 4)
    yield server
    server.stop()
