"""Rendering console pages: one Jinja2 environment (autoescaped), the page headers, a few filters."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.web.auth import PAGE_HEADERS

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def utc(moment: object) -> str:
    if not isinstance(moment, datetime):
        return "-"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def percent(value: object, digits: int = 1) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{value * 100:.{digits}f} %"


def burn(value: object) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{value:.1f}×" if value < 100 else f"{value:.0f}×"


def spoken(seconds: object) -> str:
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return "-"
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(utc=utc, percent=percent, burn=burn, spoken=spoken, b64=b64)
    return env


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    page = environment().get_template(template).render({"request": request, **context})
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)
