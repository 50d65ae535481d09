"""The MLflow model registry over its REST API (httpx), for aliases and versions.

MLflow keeps no history of aliases: sloguard records from -> to itself (rollback issue).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from app.errors import NotFound, SourceTimeout, SourceUnavailable

log = logging.getLogger(__name__)
API = "/api/2.0/mlflow"


class MlflowRegistry:
    name = "mlflow"

    def __init__(
        self, url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url + API, timeout=timeout, transport=transport)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise SourceTimeout(f"mlflow at {self.url} timed out") from exc
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"mlflow at {self.url}: {type(exc).__name__}") from exc
        if response.status_code in (400, 404):
            body = _json(response)
            code = body.get("error_code", "")
            if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise NotFound(body.get("message") or code)
        if response.status_code >= 400:
            raise SourceUnavailable(f"mlflow {path}: HTTP {response.status_code}")
        return _json(response)

    def alias_version(self, model: str, alias: str) -> str:
        """The version an alias points at; NotFound for an unknown model or alias."""
        body = self._call("GET", "/registered-models/alias", params={"name": model, "alias": alias})
        return str(body["model_version"]["version"])

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._call(
            "POST", "/registered-models/alias", json={"name": model, "alias": alias, "version": version}
        )

    def versions(self, model: str) -> list[str]:
        """Registered versions of a model, newest first."""
        body = self._call(
            "GET", "/model-versions/search", params={"filter": f"name='{model}'", "max_results": 200}
        )
        numbers = [str(v["version"]) for v in body.get("model_versions", [])]
        return sorted(numbers, key=lambda v: int(v) if v.isdigit() else -1, reverse=True)

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self._call(
            "POST",
            "/model-versions/set-tag",
            json={"name": model, "version": version, "key": key, "value": value},
        )

    def ping(self) -> None:
        self._call("GET", "/registered-models/search", params={"max_results": 1})

    def close(self) -> None:
        self.client.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
