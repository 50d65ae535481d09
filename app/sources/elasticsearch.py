"""Elasticsearch through the official client (9.x), for log-based SLIs and log evidence."""

from __future__ import annotations

import logging
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, UnsupportedProductError

from app.errors import SourceTimeout, SourceUnavailable

log = logging.getLogger(__name__)


class ElasticsearchSource:
    name = "elasticsearch"

    def __init__(self, url: str, *, timeout: float = 10.0, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client = Elasticsearch(
            self.url, api_key=api_key, request_timeout=timeout, max_retries=1, retry_on_timeout=False
        )

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ConnectionTimeout as exc:
            raise SourceTimeout(f"elasticsearch {what} timed out after {self.timeout}s") from exc
        except TransportConnectionError as exc:
            raise SourceUnavailable(f"elasticsearch at {self.url}: connection failed") from exc
        except UnsupportedProductError as exc:
            raise SourceUnavailable(f"{self.url} is not Elasticsearch") from exc
        except ApiError as exc:
            raise SourceUnavailable(f"elasticsearch {what}: {exc.meta.status} {exc.message}") from exc

    def ping(self) -> None:
        self._call("info", self.client.info)

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._call("search", self.client.search, index=index, **body)
        result: dict[str, Any] = response.body
        return result

    def close(self) -> None:
        self.client.close()
