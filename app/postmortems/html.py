"""The review draft as a web page: Markdown rendered, then sanitised, served under a strict CSP.

Three layers, each enough on its own for what the template writes: the template escapes every value
(`service.md`, `service.safe_url`); the rendered HTML goes through ammonia (nh3) with an allowlist of
the tags Markdown produces and of http/https/relative URLs, because a draft on disk also holds what
people wrote by hand in its kept sections; and the page's Content-Security-Policy runs no script at all.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import urllib.parse
from pathlib import Path

import markdown
import nh3

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.2rem .5rem;vertical-align:top}"
    "code{background:#f4f4f4}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

# No script source at all; the only style is the page's own sheet (by hash, so no injected <style> or
# style attribute applies); images from this origin only; no <base>, no forms, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self' data:; "
    f"style-src 'sha256-{_STYLE_HASH}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HTML_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MARKDOWN_HEADERS = {"X-Content-Type-Options": "nosniff"}

# What Python-Markdown's core and its tables extension produce, and nothing else.
TAGS = {
    *("h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote", "pre", "code"),
    *("em", "strong", "ul", "ol", "li", "a", "img"),
    *("table", "thead", "tbody", "tr", "th", "td"),
}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}}
_CLEANER = nh3.Cleaner(
    tags=TAGS,
    attributes=ATTRIBUTES,
    url_schemes={"http", "https"},  # relative URLs (charts, runbooks) pass through as well
    strip_comments=True,
    link_rel="noopener noreferrer",
)


def sanitise(html: str) -> str:
    """Only allowlisted tags and attributes survive; href/src only http(s) or relative."""
    return _CLEANER.clean(html)


# An image the draft links to by a relative path (its charts) is put into the page as a `data:` URI: the
# page is served from the API, where the draft's folder has no address. Only these kinds, only files in
# the draft's own folder, and none larger than this.
INLINE_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}
INLINE_LIMIT = 2_000_000  # bytes
_IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]*)(")')


def inline_images(body: str, folder: Path) -> str:
    """Relative chart images in sanitised HTML replaced by `data:` URIs of the files under `folder` (the
    postmortems folder: a draft may show another draft's charts, never a file from elsewhere).
    An image in an <img> cannot run script, whatever the file holds; anything else is left as it is."""
    root = folder.resolve()

    def inline(match: re.Match[str]) -> str:
        src = html.unescape(match.group(2))
        if urllib.parse.urlsplit(src).scheme or src.startswith(("/", "\\")):
            return match.group(0)
        try:  # a name written by hand may hold a NUL byte or be too long for the file system
            path = (root / urllib.parse.unquote(src)).resolve()
            kind = INLINE_TYPES.get(path.suffix.lower())
            if kind is None or not path.is_relative_to(root) or not path.is_file():
                return match.group(0)
            if path.stat().st_size > INLINE_LIMIT:
                return match.group(0)
            data = base64.b64encode(path.read_bytes()).decode()
        except (OSError, ValueError):
            return match.group(0)
        return f"{match.group(1)}data:{kind};base64,{data}{match.group(3)}"

    return _IMG_SRC.sub(inline, body)


def body(draft_markdown: str, folder: Path | None = None) -> str:
    """The draft as sanitised HTML, its charts inlined from `folder` (the console shows it in its page)."""
    rendered = sanitise(markdown.markdown(draft_markdown, extensions=["tables"], output_format="html"))
    return inline_images(rendered, folder) if folder is not None else rendered


def page(draft_markdown: str, title: str, folder: Path | None = None) -> str:
    """A complete HTML document for the draft, its charts inlined from `folder` (the draft's own).
    `title` is escaped here."""
    body_html = body(draft_markdown, folder)
    heading = nh3.clean_text(title)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{heading}</title>"
        f"<style>{STYLE}</style></head><body>{body_html}</body></html>"
    )
