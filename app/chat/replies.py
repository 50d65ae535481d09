"""How every listener answers, in one place: the reply privately or in the channel, and every failure as a
private message — a usage hint, the domain's refusal, or "something went wrong (error id …)" with the
exception logged once under that id. A listener's work is never dropped without a word.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from slack_bolt.async_app import AsyncRespond

from app.api import MAX_ID
from app.chat import blocks
from app.config import FileConfig
from app.errors import ServiceError, SourceError, StorageError
from app.services import ServicesRef

log = logging.getLogger(__name__)
NUMBER = re.compile(r"#?([0-9]{1,12})")  # ASCII digits: str.isdigit() also takes "²", which int() refuses


class UsageError(ValueError):
    """The command was typed wrong; the message (mrkdwn, any user text in it escaped) says how."""


@dataclass(frozen=True)
class Reply:
    text: str  # mrkdwn: everything in it that the user or an API caller wrote is escaped
    public: bool = False  # in the channel (a change everyone should see), else only to the one who asked
    blocks: list[dict[str, Any]] | None = None


def number(value: object, what: str = "incident") -> int:
    """A row id typed in a command or carried by a button: 1 to MAX_ID (PostgreSQL `integer`), else a
    UsageError that says so (a larger one used to overflow in the database and answer nothing)."""
    if value is None or value == "":
        raise UsageError(f"an {what} number is needed, e.g. `/incident show 12`")
    match = NUMBER.fullmatch(str(value))
    if match is None or not 1 <= int(match.group(1)) <= MAX_ID:
        shown = blocks.escape(blocks.cut(str(value), 40))
        raise UsageError(f"`{shown}` is not an {what} number (1 to {MAX_ID})")
    return int(match.group(1))


def slack_user(body: Mapping[str, Any]) -> str:
    """The user who typed the command or clicked, from Slack's signed body."""
    who = body.get("user")
    found = body["user_id"] if "user_id" in body else who.get("id") if isinstance(who, Mapping) else None
    if not isinstance(found, str) or blocks.USER_ID.fullmatch(found) is None:
        raise UsageError("this request names no Slack user")
    return found


def known_ids(config: FileConfig) -> frozenset[str]:
    """The Slack user and group ids sloguard.yaml names (approvers, groups, responders, on-call)."""
    ids = set(config.groups) | {member for members in config.groups.values() for member in members}
    ids |= set(config.slack.responders) | set(config.slack.oncall_groups.values())
    for model in config.models.values():
        for env in model.environments.values():
            ids |= set(env.rollback) | set(env.promote)
    return frozenset(ids)


def refusal(exc: ServiceError, config: FileConfig) -> str:
    """A domain error as mrkdwn: escaped (it may quote what was typed), mentions of configured ids kept."""
    return blocks.restore_mentions(blocks.escape(exc), known_ids(config))


def outcome(work: Callable[[], Reply], usage: str | None, config: FileConfig) -> Reply:
    """Run `work` (blocking; called in a worker thread) and turn whatever it raises into a private reply."""
    try:
        return work()
    except UsageError as exc:
        return Reply(f"{exc}\n{usage}" if usage else str(exc))
    except ServiceError as exc:
        return Reply(refusal(exc, config))
    except ValidationError as exc:  # a value the domain's models refuse (too long, empty, out of range)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return Reply(f"{blocks.escape(problems)}\n{usage}" if usage else blocks.escape(problems))
    except SourceError as exc:
        return Reply(f"A data source did not answer: {blocks.escape(exc)}")
    except StorageError as exc:  # the HTTP doors answer 503 for the same
        log.warning("Slack request not carried out: storage", extra={"error": type(exc).__name__})
        return Reply("sloguard cannot use its database right now; nothing was stored. Try again shortly.")
    except Exception:
        error_id = secrets.token_hex(4)
        log.exception("Slack request failed", extra={"error_id": error_id})
        return Reply(f"Something went wrong (error id {error_id}); it is logged under that id.")


async def answer(
    respond: AsyncRespond, work: Callable[[], Reply], usage: str | None, ref: ServicesRef
) -> None:
    """Run the work off the event loop, then reply (after a UsageError, with `usage`)."""
    await send(respond, await asyncio.to_thread(outcome, work, usage, ref.get().config))


async def send(respond: AsyncRespond, reply: Reply) -> None:
    try:
        await respond(
            text=reply.text,
            blocks=reply.blocks,
            response_type="in_channel" if reply.public else "ephemeral",
        )
    except Exception as exc:  # no response_url, or Slack unreachable: nothing else can be told
        log.warning("Slack reply could not be sent", extra={"error": type(exc).__name__})
