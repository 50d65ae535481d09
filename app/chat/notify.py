"""One Slack message per incident, kept up to date, with each change threaded under it — delivered from
the outbox.

`subscribe` records what Slack must be told as outbox rows, inside the unit of work that changed the
incident (group `slack:incident:<id>`, so an incident's post goes before its updates and replies).
`SlackEffects` delivers them: each handler renders the incident as it stands when its turn comes. A call
whose outcome is unknown (the post may have gone out and the answer been lost) is not simply repeated:
every message sloguard posts carries Slack message metadata naming the installation, the incident and the
outbox row, and the next attempt looks for it in the channel's history (or the thread's replies) first.
The Web API client has no retry handlers of its own: retries are the outbox's.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db, outbox
from app.changes import service as changes
from app.chat import blocks
from app.config import FileConfig
from app.events import (
    Dispatcher,
    IncidentEscalated,
    IncidentNoted,
    IncidentOpened,
    IncidentStatusChanged,
    IncidentUpdated,
)
from app.incidents import service as incidents
from app.incidents.models import OPEN_STATUSES, Incident
from app.incidents.record import ImpactMeasured
from app.ml import service as ml
from app.ml.service import EvidenceStored
from app.outbox import DeliveryFailed, Effect
from app.rollback.models import RollbackAction
from app.rollback.service import RollbackFinished
from app.slo import service as slo_service

log = logging.getLogger(__name__)

POST, UPDATE, THREAD, REMIND, CHANNEL, ANNOUNCE = (
    "slack.post",
    "slack.update",
    "slack.thread",
    "slack.remind",
    "slack.channel",
    "slack.announce",  # a message of its own in a model's channel (a release freeze begins or ends)
)
ANNOUNCE_EVENT = "sloguard_announcement"
MESSAGE_EVENT = "sloguard_incident"  # metadata event_type of an incident's message (and its copy)
REPLY_EVENT = "sloguard_reply"  # metadata event_type of a thread reply
HISTORY_PAGES = 10  # how far back (x 200 messages) an unknown outcome is looked for
# Answers to chat.update that no retry changes.
FINAL_UPDATE_ERRORS = frozenset(
    {
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_blocks",
        "msg_too_long",
        "invalid_blocks_format",
        "is_archived",
        "channel_not_found",
    }
)


def group(incident_id: int) -> str:
    return f"slack:incident:{incident_id}"


def room_group(incident_id: int) -> str:
    """The incident's working channel is another destination: its steps never hold up the message."""
    return f"slack:room:{incident_id}"


# ---------------------------------------------------------------- what to tell Slack (in the unit of work)


def subscribe(dispatcher: Dispatcher, config: FileConfig) -> None:
    """Record the Slack effects of incident changes as outbox rows (only when Slack is configured)."""

    def put(session: Session, kind: str, incident_id: int, payload: dict[str, Any] | None = None) -> None:
        outbox.enqueue(session, kind, group(incident_id), payload, incident_id=incident_id)

    def opened(session: Session, events: db.Events, event: IncidentOpened) -> None:
        put(session, POST, event.incident_id)
        if config.slack.incident_channels:
            outbox.enqueue(session, CHANNEL, room_group(event.incident_id), incident_id=event.incident_id)

    def status(session: Session, events: db.Events, event: IncidentStatusChanged) -> None:
        put(session, UPDATE, event.incident_id)
        put(session, THREAD, event.incident_id, {"text": status_line(event)})

    def updated(session: Session, events: db.Events, event: IncidentUpdated) -> None:
        put(session, UPDATE, event.incident_id)
        put(session, THREAD, event.incident_id, {"text": changes_line(event)})

    def noted(session: Session, events: db.Events, event: IncidentNoted) -> None:
        if event.redraw:  # news the message shows: a registry move may make the rollback moot
            put(session, UPDATE, event.incident_id)
        put(session, THREAD, event.incident_id, {"text": note_line(event)})

    def escalated(session: Session, events: db.Events, event: IncidentEscalated) -> None:
        put(session, REMIND, event.incident_id, {"unacknowledged_seconds": event.unacknowledged_seconds})

    def evidence(session: Session, events: db.Events, event: EvidenceStored) -> None:
        put(session, UPDATE, event.incident_id)

    def rollback(session: Session, events: db.Events, event: RollbackFinished) -> None:
        """Each rollback outcome (done, failed, recovered, not recovered) in the incident's thread."""
        if event.incident_id is None:
            return
        put(session, UPDATE, event.incident_id)
        put(session, THREAD, event.incident_id, {"text": blocks.escape(event.text) + by(event.actor)})
        if event.state == "not_recovered" and event.undo_to is not None:
            undo = blocks.rollback_button(event.incident_id, event.undo_to, event.environment)
            put(
                session,
                THREAD,
                event.incident_id,
                {
                    "text": f"The burn did not stop. Undo: back to version {blocks.escape(event.undo_to)}?",
                    "blocks": [
                        {"type": "section", "text": {"type": "mrkdwn", "text": "The burn did not stop."}},
                        {"type": "actions", "elements": [undo]},
                    ],
                },
            )

    dispatcher.subscribe(IncidentOpened, opened)
    dispatcher.subscribe(IncidentStatusChanged, status)
    dispatcher.subscribe(IncidentUpdated, updated)
    dispatcher.subscribe(IncidentEscalated, escalated)
    dispatcher.subscribe(IncidentNoted, noted)
    dispatcher.subscribe(EvidenceStored, evidence)
    dispatcher.subscribe(
        ImpactMeasured, lambda session, events, event: put(session, UPDATE, event.incident_id)
    )
    dispatcher.subscribe(RollbackFinished, rollback)


def backfill(session: Session) -> int:
    """Post the message of every open incident that has none and no post waiting: incidents opened before
    the outbox existed (an upgrade), when a post could still be lost. Run when a replica starts."""
    waiting = select(outbox.OutboxRow.incident_id).where(col(outbox.OutboxRow.kind) == POST)
    missing = session.exec(
        select(Incident.id).where(
            col(Incident.status).in_(OPEN_STATUSES),
            col(Incident.slack_ts).is_(None),
            col(Incident.id).not_in(waiting.where(col(outbox.OutboxRow.incident_id).is_not(None))),
        )
    ).all()
    for incident_id in missing:
        if incident_id is not None:
            outbox.enqueue(session, POST, group(incident_id), incident_id=incident_id)
    return len(missing)


def by(actor: str | None) -> str:
    """` by @ana` for a Slack user id (a signed request), ` by alice` (escaped, never a mention) for an
    API caller's free-text actor, ` (no actor given)` when the caller named nobody."""
    if actor is None or not actor.strip():
        return " (no actor given)"
    return f" by {blocks.user(actor)}"


def status_line(event: IncidentStatusChanged) -> str:
    """`triggered → acknowledged by @ana`."""
    return f"{blocks.escape(event.old)} → {blocks.escape(event.new)}{by(event.actor)}"


def changes_line(event: IncidentUpdated) -> str:
    """`severity: SEV1, commander: @ana by @bob`: every value escaped (API callers set them), a commander
    that is a Slack user id mentioned."""
    changed = ", ".join(
        f"{blocks.escape(key)}: {blocks.user(value) if key == 'commander' else blocks.escape(value)}"
        for key, value in event.changes.items()
    )
    return changed + by(event.actor)


def note_line(event: IncidentNoted) -> str:
    return f"note{by(event.actor)}: {blocks.escape(blocks.cut(event.text, 2000))}"


# ---------------------------------------------------------------- delivering (the outbox's handlers)


def call(what: str, method: Callable[..., Any], **arguments: Any) -> Any:
    """One Web API call; a failure becomes DeliveryFailed, saying whether Slack may have acted on it."""
    try:
        return method(**arguments)
    except SlackApiError as exc:
        response = exc.response
        error = response.get("error") if isinstance(response.data, dict) else None
        if response.status_code == 429:
            headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
            raw = headers.get("retry-after")
            value = raw[0] if isinstance(raw, list) else raw
            try:
                retry_after = float(value) if value is not None else 1.0
            except ValueError:
                retry_after = 1.0
            raise DeliveryFailed(f"Slack {what}: rate limited", sent=False, retry_after=retry_after) from exc
        if response.status_code >= 500 or error is None:
            # Slack's edge failing: the call may have been carried out behind it.
            raise DeliveryFailed(
                f"Slack {what}: HTTP {response.status_code} (the outcome is unknown)"
            ) from exc
        # An answer that is an error: Slack did not do it.
        raise DeliveryFailed(f"Slack {what}: {error}", sent=False, error=error) from exc
    except URLError as exc:
        refused = isinstance(exc.reason, ConnectionRefusedError)
        raise DeliveryFailed(f"Slack {what}: {type(exc.reason).__name__}", sent=not refused) from exc
    except ConnectionRefusedError as exc:
        raise DeliveryFailed(f"Slack {what}: connection refused", sent=False) from exc
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise DeliveryFailed(f"Slack {what}: {type(exc).__name__} (the outcome is unknown)") from exc


class SlackEffects:
    """The outbox handlers of the `slack.*` kinds."""

    def __init__(
        self,
        client: WebClient,
        engine: Engine,
        config: FileConfig,
        default_channel: str | None,
        console_url: str | None = None,
        slo_engine: Any = None,
    ) -> None:
        self.client, self.engine, self.config = client, engine, config
        self.slo_engine = slo_engine  # its SLOs, looked up at each render (they may be reloaded)
        self.default_channel = default_channel
        self.console_url = console_url
        self.installation = db.installation_id(engine) or ""

    def handlers(self) -> dict[str, outbox.Handler]:
        return {
            POST: self.post,
            UPDATE: self.update,
            THREAD: self.thread,
            REMIND: self.remind,
            CHANNEL: self.channel,
            ANNOUNCE: self.announce,
        }

    def channel_for(self, incident: Incident) -> str | None:
        channels = self.config.channels
        for key in (incident.model, incident.service):
            if key and key in channels:
                return channels[key]
        return channels.get("default") or self.default_channel

    def render(self, incident_id: int) -> tuple[Incident, list[dict[str, Any]], str]:
        """The message from what is stored: the incident, its evidence, its SLO's last evaluation (over
        the SLO's own windows), its runbook, and its latest version change."""
        slo: dict[str, Any] | None = None
        with Session(self.engine) as session:
            incident = incidents.get(session, incident_id)
            evidence = {
                k: [row.model_dump() for row in rows] for k, rows in ml.evidence(session, incident_id).items()
            }
            spent = ml.budget_of(session, incident) if incident.slo_id else None
            known = self.slo_engine.by_id if self.slo_engine is not None else {}
            spec = known.get(incident.slo_id) if incident.slo_id else None
            if spec is not None:
                (slo,) = slo_service.latest_status(session, [spec])
                slo["own_windows"] = [w.name for w in spec.windows_by_tier]
            last = session.exec(
                select(RollbackAction)
                .where(RollbackAction.incident_id == incident_id)
                .order_by(col(RollbackAction.id).desc())
            ).first()
            now = db.utcnow()
            alias_version = self._alias_version(session, incident, now)
        data = incidents.as_dict(incident)
        change = last.model_dump() if last is not None else None
        return (
            incident,
            blocks.incident_blocks(
                data,
                evidence,
                slo=slo,
                runbook=spec.runbook if spec is not None else None,
                console_url=self.console_url,
                change=change,
                budget_by_version=spent,
                alias_version=alias_version,
                now=now,
            ),
            blocks.fallback_text(data),
        )

    def _alias_version(self, session: Session, incident: Incident, now: datetime) -> str | None:
        """Where the registry alias of the incident's model and environment points by its last move
        MLflow announced since the incident began (sloguard's own or anyone's), or None. MLflow stamps a
        move with its own clock, which may run a little ahead of sloguard's."""
        match = ml.model_for(incident, self.config.models)
        registry = match[1].registry if match is not None else None
        alias = registry.aliases.get(incident.environment or "prod") if registry is not None else None
        if registry is None or alias is None:
            return None
        moves = changes.alias_moves(
            session, registry.name, alias, incident.started_at, now + changes.MATCH_AFTER
        )
        return moves[-1].version if moves else None

    def _metadata(self, event_type: str, effect: Effect, **extra: Any) -> dict[str, Any]:
        return {
            "event_type": event_type,
            "event_payload": {
                "installation": self.installation,
                "incident_id": effect.incident_id,
                "outbox_id": effect.id,
                **extra,
            },
        }

    def _ours(self, message: dict[str, Any], event_type: str, effect: Effect, key: str) -> bool:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        return (
            metadata.get("event_type") == event_type
            and payload.get("installation") == self.installation
            and payload.get(key) == (effect.incident_id if key == "incident_id" else effect.id)
        )

    def _find_in_history(
        self, channel: str, effect: Effect, event_type: str, key: str = "incident_id"
    ) -> str | None:
        """The ts of the message an earlier attempt of `effect` posted to `channel`, if it did."""
        oldest = (effect.created_at - timedelta(minutes=5)).timestamp()
        cursor = None
        for _ in range(HISTORY_PAGES):
            arguments: dict[str, Any] = {
                "channel": channel,
                "oldest": f"{oldest:.6f}",
                "include_all_metadata": True,
                "limit": 200,
            }
            if cursor:
                arguments["cursor"] = cursor
            page = call("conversations.history", self.client.conversations_history, **arguments)
            for message in page.get("messages") or []:
                if self._ours(message, event_type, effect, key):
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return None
        return None

    def _find_reply(self, channel: str, thread_ts: str, effect: Effect) -> bool:
        cursor = None
        for _ in range(HISTORY_PAGES):
            arguments: dict[str, Any] = {
                "channel": channel,
                "ts": thread_ts,
                "include_all_metadata": True,
                "limit": 200,
            }
            if cursor:
                arguments["cursor"] = cursor
            page = call("conversations.replies", self.client.conversations_replies, **arguments)
            if any(self._ours(m, REPLY_EVENT, effect, "outbox_id") for m in page.get("messages") or []):
                return True
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return False
        return False

    # -------------------------------------------------- handlers

    def post(self, effect: Effect) -> outbox.Completion | None:
        assert effect.incident_id is not None
        incident_id = effect.incident_id
        incident, content, text = self.render(incident_id)
        if incident.slack_ts:
            return None  # posted already
        channel = self.channel_for(incident)
        if channel is None:
            log.info("no Slack channel for incident", extra={"incident_id": incident_id})
            return None
        found = None
        if effect.uncertain:
            try:
                found = self._find_in_history(channel, effect, MESSAGE_EVENT)
            except DeliveryFailed as exc:
                if "channel_not_found" not in exc.reason:
                    raise
                # A channel given by name cannot be searched; posting again may show the message twice.
                log.warning("cannot look for an earlier post", extra={"incident_id": incident_id})
        if found is not None:
            where, ts = channel, found
        else:
            response = call(
                "chat.postMessage",
                self.client.chat_postMessage,
                channel=channel,
                text=text,
                blocks=content,
                metadata=self._metadata(MESSAGE_EVENT, effect),
            )
            where, ts = str(response["channel"]), str(response["ts"])

        def record(session: Session, events: db.Events) -> None:
            incidents.record_slack_message(session, incident_id, where, ts)

        return record

    def update(self, effect: Effect) -> None:
        assert effect.incident_id is not None
        incident, content, text = self.render(effect.incident_id)
        if not incident.slack_ts or not incident.slack_channel:
            return None  # never posted (no channel): nothing to redraw
        try:
            call(
                "chat.update",
                self.client.chat_update,
                channel=incident.slack_channel,
                ts=incident.slack_ts,
                text=text,
                blocks=content,
            )
        except DeliveryFailed as exc:
            if exc.error not in FINAL_UPDATE_ERRORS:
                raise
            # A redraw Slack will never take (the message was deleted, the blocks refused): the next
            # change redraws again, and the thread replies behind it must not wait 24 hours for this one.
            log.error(
                "Slack refused to redraw an incident message",
                extra={"incident_id": effect.incident_id, "error": exc.error},
            )
        return None

    def _reply(self, effect: Effect, channel: str, thread_ts: str, text: str, content: Any = None) -> None:
        if effect.uncertain and self._find_reply(channel, thread_ts, effect):
            return
        arguments: dict[str, Any] = {
            "channel": channel,
            "thread_ts": thread_ts,
            "text": text,
            "metadata": self._metadata(REPLY_EVENT, effect),
        }
        if content:
            arguments["blocks"] = content
        call("chat.postMessage", self.client.chat_postMessage, **arguments)

    def thread(self, effect: Effect) -> None:
        assert effect.incident_id is not None
        with Session(self.engine) as session:
            incident = incidents.get(session, effect.incident_id)
        if not incident.slack_ts or not incident.slack_channel:
            return None
        self._reply(
            effect,
            incident.slack_channel,
            incident.slack_ts,
            effect.payload["text"],
            effect.payload.get("blocks"),
        )
        return None

    def remind(self, effect: Effect) -> None:
        """Thread reply mentioning the channel's on-call group (or @here) for an unacknowledged incident."""
        assert effect.incident_id is not None
        with Session(self.engine) as session:
            incident = incidents.get(session, effect.incident_id)
        if not incident.slack_ts or not incident.slack_channel:
            return None
        group_id = self.config.slack.oncall_groups.get(incident.slack_channel)
        who = f"<!subteam^{group_id}>" if group_id else "<!here>"
        minutes = float(effect.payload.get("unacknowledged_seconds", 0)) / 60
        text = (
            f"{who} incident #{incident.id} ({blocks.escape(incident.severity)}) is still not "
            f"acknowledged after {minutes:.0f} min"
        )
        self._reply(effect, incident.slack_channel, incident.slack_ts, text)
        return None

    def announce(self, effect: Effect) -> None:
        """Post `payload.text` in the channel of `payload.model` (sloguard.yaml `channels:`), once: a retry
        whose first attempt may have posted looks for it first."""
        model = str(effect.payload.get("model", ""))
        channel = (
            self.config.channels.get(model) or self.config.channels.get("default") or self.default_channel
        )
        if channel is None:
            log.info("announcement not posted: no channel", extra={"model": model})
            return None
        if effect.uncertain and self._find_in_history(channel, effect, ANNOUNCE_EVENT, key="outbox_id"):
            return None
        call(
            "chat.postMessage",
            self.client.chat_postMessage,
            channel=channel,
            text=blocks.escape(str(effect.payload["text"])),
            metadata=self._metadata(ANNOUNCE_EVENT, effect),
        )
        return None

    def _find_channel(self, name: str) -> str | None:
        cursor = None
        for _ in range(50):
            arguments: dict[str, Any] = {
                "types": "public_channel,private_channel",
                "exclude_archived": False,  # an archived channel takes its name too
                "limit": 1000,
            }
            if cursor:
                arguments["cursor"] = cursor
            page = call("conversations.list", self.client.conversations_list, **arguments)
            for channel in page.get("channels") or []:
                if channel.get("name") == name:
                    return str(channel["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def channel(self, effect: Effect) -> None:
        """The incident's own working channel: created (or found, when the name is taken), the responders
        invited, a copy of the message posted there and a link to it in the message's thread. Each step is
        remembered in the row's progress, so a retry goes on from where the last attempt got."""
        assert effect.incident_id is not None
        incident, content, text = self.render(effect.incident_id)
        if not incident.slack_ts or not incident.slack_channel:
            if self.channel_for(incident) is None:
                return None  # the incident has no message, so no working channel either
            raise DeliveryFailed("waiting for the incident's message to be posted", sent=False)
        room = effect.progress.get("room")
        if room is None:
            name = blocks.channel_name(effect.incident_id, incident.title)
            try:
                created = call("conversations.create", self.client.conversations_create, name=name)
                room = str(created["channel"]["id"])
            except DeliveryFailed as exc:
                if "name_taken" not in exc.reason:
                    raise
                room = self._find_channel(name)
                if room is None:
                    raise DeliveryFailed(
                        f"Slack channel {name} is taken and cannot be found", sent=False
                    ) from exc
            effect.save(room=room)
        if not effect.progress.get("invited"):
            options = self.config.slack
            people = sorted({*options.responders, *([incident.commander] if incident.commander else [])})
            if people:
                try:
                    call(
                        "conversations.invite",
                        self.client.conversations_invite,
                        channel=room,
                        users=",".join(people),
                    )
                except DeliveryFailed as exc:
                    if exc.error is None or exc.retry_after is not None:
                        raise  # unknown outcome or rate limited: try again
                    # Someone who cannot be invited (a free-text commander, a deactivated user) must not
                    # keep the channel from being used.
                    if exc.error != "already_in_channel":
                        log.warning("could not invite to the incident channel", extra={"error": exc.error})
            effect.save(invited=True)
        if not effect.progress.get("copied"):
            if not (effect.uncertain and self._find_in_history(room, effect, MESSAGE_EVENT)):
                copy = {"channel": room, "text": text, "blocks": content}
                try:
                    call(
                        "chat.postMessage",
                        self.client.chat_postMessage,
                        **copy,
                        metadata=self._metadata(MESSAGE_EVENT, effect),
                    )
                except DeliveryFailed as exc:
                    if exc.error != "not_in_channel":
                        raise
                    # A channel found by its name that the bot is not in: join it, then post.
                    call("conversations.join", self.client.conversations_join, channel=room)
                    call(
                        "chat.postMessage",
                        self.client.chat_postMessage,
                        **copy,
                        metadata=self._metadata(MESSAGE_EVENT, effect),
                    )
            effect.save(copied=True)
        self._reply(effect, incident.slack_channel, incident.slack_ts, f"Working channel: <#{room}>")
        return None
