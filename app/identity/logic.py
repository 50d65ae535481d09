"""Who is acting, and what a credential reaches. Pure: no database, no clock of its own.

A personal token reads `sloguard_pat_` + 32 random base62 characters + a 6-character base62 CRC32 of
them: the prefix lets secret scanners find a leaked one (README "Tokens and scopes"), and the checksum
lets a typo or a guess be refused without asking the database. Only its SHA-256 is stored: the random
part holds about 190 bits, so a fast hash is as safe as a slow one and costs nothing per request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

PREFIX = "sloguard_pat_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM = 32
_CHECK = 6
TOKEN = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{_RANDOM + _CHECK}}}$")
HINT = len(PREFIX) + 4  # what `tokens list` shows of a token: the prefix and 4 random characters
# A Slack user ID: people are named by the IDs Slack signs, so a token's owner is one too.
PERSON = re.compile(r"^[UW][A-Z0-9]{1,30}$")
# The automation identity's name: lower case, so it can never be mistaken for a Slack ID (U…, S…).
AUTOMATION_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
SLACK_GROUP = re.compile(r"^S[A-Z0-9]{1,30}$")


class Scope(StrEnum):
    """A ceiling, each one reaching everything the ones before it reach (README "Tokens and scopes")."""

    read = "read"
    respond = "respond"
    change = "change"
    admin = "admin"

    @property
    def rank(self) -> int:
        return list(Scope).index(self)

    def reaches(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


Via = Literal["slack", "token", "automation", "cli", "sloguard", "console"]


@dataclass(frozen=True)
class Actor:
    """Who made a change: a Slack user ID (signed by Slack, or a personal token's owner), the automation
    identity's name, or `sloguard` itself; with the token it came through, when one did."""

    name: str
    via: Via = "slack"
    token_id: int | None = None

    @classmethod
    def of(cls, actor: Actor | str) -> Actor:
        """`actor` itself, or a name a part of sloguard vouches for (the CLI, a job)."""
        return actor if isinstance(actor, Actor) else cls(actor, via="sloguard")


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, len(_ALPHABET))
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode("ascii")), _CHECK)


def new_token() -> str:
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM))
    return f"{PREFIX}{random_part}{_checksum(random_part)}"


def well_formed(token: str) -> bool:
    """The shape and checksum of a personal token: False for a typo, a truncation or a guess."""
    if TOKEN.fullmatch(token) is None:
        return False
    body = token[len(PREFIX) :]
    return secrets.compare_digest(_checksum(body[:_RANDOM]), body[_RANDOM:])


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hint(token: str) -> str:
    return f"{token[:HINT]}…"


def is_group(entry: str, groups: Mapping[str, Sequence[str]] | None = None) -> bool:
    """A permission entry naming a user group: one listed in sloguard.yaml `groups:`, or a Slack user group
    ID (S…) even when unlisted (then it has no members)."""
    return entry in (groups or {}) or SLACK_GROUP.fullmatch(entry) is not None
