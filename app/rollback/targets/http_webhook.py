"""POST the change to a deploy system, signed with HMAC-SHA256; retried on 5xx; 2xx is success."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from app.rollback.targets import Change, TargetFailed, TargetResult

SIGNATURE_HEADER = "X-Sloguard-Signature"
TIMESTAMP_HEADER = "X-Sloguard-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """sha256=HMAC(secret, "<timestamp>.<body>"): receivers reject old timestamps, so a captured
    request cannot be replayed later."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class HttpWebhookTarget:
    kind = "http_webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        current_version: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, self.secret, self.retries = url, secret, retries
        self._current = current_version
        self.client = httpx.Client(timeout=timeout, transport=transport)

    def current(self) -> str | None:
        return self._current  # a deploy hook cannot be asked; sloguard's records and metrics tell

    def candidates(self) -> list[str]:
        return []

    def set_version(self, change: Change) -> TargetResult:
        body = json.dumps(
            {
                "model": change.model,
                "environment": change.environment,
                "from": change.from_version,
                "to": change.to_version,
                "incident": change.incident_id,
                "actor": change.actor,
                "reason": change.reason,
                "idempotency_key": change.idempotency_key,
            },
            sort_keys=True,
        ).encode()
        attempts: list[str] = []
        for attempt in range(self.retries + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: signature(self.secret, timestamp, body),
                "Idempotency-Key": change.idempotency_key,
            }
            try:
                response = self.client.post(self.url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                raise TargetFailed(
                    f"deploy hook timed out after {self.client.timeout.read}s", "\n".join(attempts)
                ) from exc
            except httpx.HTTPError as exc:
                raise TargetFailed(
                    f"deploy hook unreachable: {type(exc).__name__}", "\n".join(attempts)
                ) from exc
            attempts.append(f"attempt {attempt + 1}: HTTP {response.status_code} {response.text[:500]}")
            if response.is_success:
                return TargetResult("\n".join(attempts), {"status": response.status_code})
            if response.status_code < 500:
                break
            time.sleep(min(2.0, 0.2 * 2**attempt))
        raise TargetFailed(f"deploy hook answered HTTP {response.status_code}", "\n".join(attempts))

    def close(self) -> None:
        self.client.close()
