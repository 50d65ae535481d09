"""The review draft as a web page: Markdown rendered, then sanitised, served under a strict CSP.

Three layers, each enough on its own for what the template writes: the template escapes every value
(`service.md`, `service.safe_url`); the rendered HTML goes through ammonia (nh3) with an allowlist of
the tags Markdown produces and of http/https/relative URLs, because a draft on disk also holds what
people wrote by hand in its kept sections; and the page's Content-Security-Policy runs no script at all.
"""

from __future__ import annotations

import base64
import hashlib

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


def page(draft_markdown: str, title: str) -> str:
    """A complete HTML document for the draft. `title` is escaped here."""
    body = sanitise(markdown.markdown(draft_markdown, extensions=["tables"], output_format="html"))
    heading = nh3.clean_text(title)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{heading}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
