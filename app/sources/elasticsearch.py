"""Elasticsearch through the official client (9.x), for log-based SLIs and log evidence."""

from __future__ import annotations

import logging
import time
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, UnsupportedProductError

from app.errors import SourceError, SourceTimeout, SourceUnavailable
from app.sources import SourceCheck

log = logging.getLogger(__name__)


class ElasticsearchSource:
    name = "elasticsearch"

    def __init__(self, url: str, *, timeout: float = 10.0, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client = Elasticsearch(
            self.url, api_key=api_key, request_timeout=timeout, max_retries=1, retry_on_timeout=False
        )
        self.last_call: SourceCheck | None = None

    def _call(self, what: str, fn: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """`fn(**kwargs)` with library errors as SourceErrors; the outcome kept as `last_call`, except an
        error answer to the request (a missing index, a bad query), which says Elasticsearch is up."""
        started = time.monotonic()
        failure: SourceError
        try:
            result = fn(**kwargs)
        except ConnectionTimeout as exc:
            limit = self.timeout if timeout is None else timeout
            failure = SourceTimeout(f"elasticsearch at {self.url}: {what} timed out after {limit:g}s")
            self.last_call = SourceCheck.ended(started, failure)
            raise failure from exc
        except TransportConnectionError as exc:
            failure = SourceUnavailable(f"elasticsearch at {self.url}: connection failed")
            self.last_call = SourceCheck.ended(started, failure)
            raise failure from exc
        except UnsupportedProductError as exc:
            failure = SourceUnavailable(f"{self.url} is not Elasticsearch")
            self.last_call = SourceCheck.ended(started, failure)
            raise failure from exc
        except ApiError as exc:
            raise SourceUnavailable(f"elasticsearch {what}: {exc.meta.status} {exc.message}") from exc
        self.last_call = SourceCheck.ended(started)
        return result

    def ping(self, timeout: float | None = None) -> None:
        """GET /; `timeout` (seconds) instead of the source timeout, for health probes."""
        client = self.client if timeout is None else self.client.options(request_timeout=timeout)
        self._call("info", client.info, timeout)

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._call("search", self.client.search, index=index, **body)
        result: dict[str, Any] = response.body
        return result

    def close(self) -> None:
        self.client.close()
