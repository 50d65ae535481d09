"""A real Alertmanager 0.25 (Debian's prometheus-alertmanager) on loopback, posting to sloguard."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.prometheus import binary
from tests.servers import free_port, wait_until


class AlertmanagerServer:
    def __init__(self, folder: Path, webhook_url: str, token: str, group_by: list[str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "route": {
                "receiver": "sloguard",
                "group_by": group_by or ["alertname", "service"],
                "group_wait": "0s",
                "group_interval": "100ms",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "sloguard",
                    "webhook_configs": [
                        {
                            "url": webhook_url,
                            "send_resolved": True,
                            "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                        }
                    ],
                }
            ],
        }
        self.config = folder / "alertmanager.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AlertmanagerServer:
        self.log = (self.folder / "alertmanager.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary("prometheus-alertmanager"),
                f"--config.file={self.config}",
                f"--storage.path={self.folder / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                f"--web.external-url={self.url}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=30, what=f"alertmanager on {self.url}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"alertmanager exited: see {self.log.name}")
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def post(
        self, labels: dict[str, str], annotations: dict[str, str] | None = None, *, resolve: bool = False
    ) -> None:
        alert: dict[str, Any] = {"labels": labels, "annotations": annotations or {}}
        if resolve:
            alert["endsAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        response = httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=10)
        response.raise_for_status()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        if self.process is not None:
            self.log.close()
