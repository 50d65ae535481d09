"""Prometheus (or Thanos, or Mimir) through prometheus-api-client.

Built once with its base URL, timeout and optional tenant; every library error leaves this module as a
SourceError so that callers never see `requests` exceptions.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from app.errors import SourceTimeout, SourceUnavailable

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

    def query(self, promql: str, at: datetime | None = None) -> list[dict[str, Any]]:
        """An instant query; `at` evaluates it at that time instead of now."""
        params = {"time": f"{at.timestamp():.3f}"} if at is not None else None
        try:
            result: list[dict[str, Any]] = self._client.custom_query(promql, params=params)
        except requests.Timeout as exc:
            raise SourceTimeout(f"prometheus at {self.url} timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise SourceUnavailable(f"prometheus at {self.url}: {type(exc).__name__}") from exc
        except PrometheusApiClientException as exc:
            raise SourceUnavailable(f"prometheus at {self.url}: {exc}") from exc
        except ValueError as exc:  # a body that is not JSON: not a Prometheus
            raise SourceUnavailable(f"prometheus at {self.url}: bad response") from exc
        return result

    def query_range(
        self, promql: str, start: datetime, end: datetime, step_seconds: int
    ) -> list[dict[str, Any]]:
        try:
            result: list[dict[str, Any]] = self._client.custom_query_range(
                promql, start_time=start, end_time=end, step=str(step_seconds)
            )
        except requests.Timeout as exc:
            raise SourceTimeout(f"prometheus at {self.url} timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise SourceUnavailable(f"prometheus at {self.url}: {type(exc).__name__}") from exc
        except PrometheusApiClientException as exc:
            raise SourceUnavailable(f"prometheus at {self.url}: {exc}") from exc
        return result

    def ping(self) -> None:
        self.query("vector(1)")

    def close(self) -> None:
        self._client.close()
