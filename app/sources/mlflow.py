"""The MLflow model registry over its REST API (httpx), for aliases and versions.

MLflow keeps no history of aliases: sloguard records from -> to itself (rollback issue).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from app.errors import NotFound, SourceError, SourceTimeout, SourceUnavailable
from app.sources import SourceCheck

log = logging.getLogger(__name__)
API = "/api/2.0/mlflow"


class MlflowRegistry:
    name = "mlflow"

    def __init__(
        self, url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client = httpx.Client(base_url=self.url + API, timeout=timeout, transport=transport)
        self.last_call: SourceCheck | None = None

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One REST call with library errors as SourceErrors; the outcome kept as `last_call`, where any
        answer below HTTP 500 (an unknown model, say) counts as the registry being up."""
        started = time.monotonic()
        failure: SourceError
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            limit = kwargs.get("timeout", self.timeout)
            failure = SourceTimeout(f"mlflow at {self.url} timed out after {limit:g}s")
            self.last_call = SourceCheck.ended(started, failure)
            raise failure from exc
        except httpx.HTTPError as exc:
            failure = SourceUnavailable(f"mlflow at {self.url}: {type(exc).__name__}")
            self.last_call = SourceCheck.ended(started, failure)
            raise failure from exc
        if response.status_code >= 500:
            failure = SourceUnavailable(f"mlflow {path}: HTTP {response.status_code}")
            self.last_call = SourceCheck.ended(started, failure)
            raise failure
        self.last_call = SourceCheck.ended(started)
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

    def ping(self, timeout: float | None = None) -> None:
        """One registered model; `timeout` (seconds) instead of the source timeout, for health probes."""
        limit = {} if timeout is None else {"timeout": timeout}  # httpx reads timeout=None as "never"
        self._call("GET", "/registered-models/search", params={"max_results": 1}, **limit)

    def close(self) -> None:
        self.client.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
