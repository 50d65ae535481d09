"""Prometheus (or Thanos, or Mimir) through prometheus-api-client.

Built once with its base URL, timeout and optional tenant; every library error leaves this module as a
SourceError so that callers never see `requests` exceptions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from app.errors import SourceError, SourceTimeout, SourceUnavailable
from app.sources import SourceCheck

log = logging.getLogger(__name__)


class PrometheusSource:
    name = "prometheus"

    def __init__(self, url: str, *, timeout: float = 10.0, tenant: str | None = None) -> None:
        headers = {"X-Scope-OrgID": tenant} if tenant else None
        self.url = url.rstrip("/")
        self.timeout = timeout
        # One quick retry on connection errors only: an evaluation cycle must not hang on a dead server.
        retry = Retry(total=1, connect=1, read=0, status=0, backoff_factor=0.1)
        self._client = PrometheusConnect(url=self.url, headers=headers, retry=retry, timeout=timeout)
        self.last_call: SourceCheck | None = None

    def query(self, promql: str, at: datetime | None = None) -> list[dict[str, Any]]:
        """An instant query; `at` evaluates it at that time instead of now."""
        params = {"time": f"{at.timestamp():.3f}"} if at is not None else None
        with self._errors(self.timeout):
            result: list[dict[str, Any]] = self._client.custom_query(promql, params=params)
        return result

    def query_range(
        self, promql: str, start: datetime, end: datetime, step_seconds: int
    ) -> list[dict[str, Any]]:
        with self._errors(self.timeout):
            result: list[dict[str, Any]] = self._client.custom_query_range(
                promql, start_time=start, end_time=end, step=str(step_seconds)
            )
        return result

    def ping(self, timeout: float | None = None) -> None:
        """A trivial query; `timeout` (seconds) instead of the source timeout, for health probes."""
        limit = self.timeout if timeout is None else timeout
        with self._errors(limit):
            self._client.custom_query("vector(1)", timeout=limit)

    @contextmanager
    def _errors(self, timeout: float) -> Iterator[None]:
        """Library errors as SourceErrors (a timeout, connecting or reading, as SourceTimeout); the
        outcome kept as `last_call`, except an error answer to the query, which says Prometheus is up."""
        started = time.monotonic()
        failure: SourceError
        try:
            yield
        except requests.RequestException as exc:
            if _timed_out(exc):
                failure = SourceTimeout(f"prometheus at {self.url} timed out after {timeout:g}s")
            else:
                failure = SourceUnavailable(f"prometheus at {self.url}: {type(exc).__name__}")
            self.last_call = SourceCheck.ended(started, failure)
            raise failure from exc
        except PrometheusApiClientException as exc:
            raise SourceUnavailable(f"prometheus at {self.url}: {exc}") from exc
        except ValueError as exc:  # a body that is not JSON: not a Prometheus
            failure = SourceUnavailable(f"prometheus at {self.url}: bad response")
            self.last_call = SourceCheck.ended(started, failure)
            raise failure from exc
        self.last_call = SourceCheck.ended(started)

    def close(self) -> None:
        self._client.close()


def _timed_out(exc: requests.RequestException) -> bool:
    """requests raises Timeout for a timeout it sees itself (and for a connect timeout after retries), but a
    read timeout that exhausts urllib3's Retry arrives as ConnectionError(MaxRetryError(ReadTimeoutError))."""
    if isinstance(exc, requests.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ReadTimeoutError)
