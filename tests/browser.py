"""Debian's Chromium for the console's browser tests, driven by Playwright through its executable path
(Playwright never downloads a browser here), with the flags that keep it off this closed network."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
