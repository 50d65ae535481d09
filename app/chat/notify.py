"""Keep one Slack message per incident up to date, and thread each change under it.

Domain events arrive in the thread that committed them; Slack calls run in a small pool so a slow Web
API never holds a request or a job. The Web API client is built with its base URL (tests point it at a
local server).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app import db
from app.chat import blocks
from app.config import FileConfig
from app.events import Dispatcher, IncidentEscalated, IncidentOpened, IncidentStatusChanged, IncidentUpdated
from app.incidents import service as incidents
from app.incidents.models import Incident
from app.ml import service as ml
from app.rollback.service import RollbackFinished

log = logging.getLogger(__name__)


class SlackNotifier:
    def __init__(
        self,
        client: WebClient,
        engine: Engine,
        config: FileConfig,
        default_channel: str | None,
        api_url: str | None = None,
    ) -> None:
        self.client, self.engine, self.config = client, engine, config
        self.default_channel = default_channel
        self.api_url = api_url
        self.pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="slack"
        )  # one: keeps order per incident

    def channel_for(self, incident: Incident) -> str | None:
        channels = self.config.channels
        for key in (incident.model, incident.service):
            if key and key in channels:
                return channels[key]
        return channels.get("default") or self.default_channel

    def render(self, incident_id: int) -> tuple[Incident, list[dict[str, Any]], str]:
        with Session(self.engine) as session:
            incident = incidents.get(session, incident_id)
            evidence = {
                k: [row.model_dump() for row in rows] for k, rows in ml.evidence(session, incident_id).items()
            }
        data = incidents.as_dict(incident)
        return (
            incident,
            blocks.incident_blocks(data, evidence, api_url=self.api_url),
            blocks.fallback_text(data),
        )

    def post(self, incident_id: int) -> None:
        # Replicas serialise their Slack calls per incident: an update waits for the first post to
        # store its ts, and each call renders the incident as it stands when it gets its turn.
        with db.advisory_lock(self.engine, "slack-incident", incident_id):
            self._post(incident_id)

    def _post(self, incident_id: int) -> None:
        incident, content, text = self.render(incident_id)
        if incident.slack_ts:
            return  # already posted (an event delivered twice)
        channel = self.channel_for(incident)
        if channel is None:
            log.info("no Slack channel for incident", extra={"incident_id": incident_id})
            return
        response = self.client.chat_postMessage(channel=channel, text=text, blocks=content)
        incidents.set_slack_message(self.engine, incident_id, str(response["channel"]), str(response["ts"]))
        options = self.config.slack
        if options.incident_channels:
            name = blocks.channel_name(incident_id, incident.title)
            created = self.client.conversations_create(name=name)
            room = str(created["channel"]["id"])
            people = sorted({*options.responders, *([incident.commander] if incident.commander else [])})
            if people:
                self.client.conversations_invite(channel=room, users=",".join(people))
            self.client.chat_postMessage(channel=room, text=text, blocks=content)
            self.client.chat_postMessage(
                channel=str(response["channel"]),
                thread_ts=str(response["ts"]),
                text=f"Working channel: <#{room}>",
            )

    def update(self, incident_id: int, thread_text: str | None) -> None:
        with db.advisory_lock(self.engine, "slack-incident", incident_id):
            self._update(incident_id, thread_text)

    def _update(self, incident_id: int, thread_text: str | None) -> None:
        incident, content, text = self.render(incident_id)
        if not incident.slack_ts or not incident.slack_channel:
            return
        self.client.chat_update(
            channel=incident.slack_channel, ts=incident.slack_ts, text=text, blocks=content
        )
        if thread_text:
            self.client.chat_postMessage(
                channel=incident.slack_channel, thread_ts=incident.slack_ts, text=thread_text
            )

    def remind(self, event: IncidentEscalated) -> None:
        """Thread reply mentioning the channel's on-call group (or @here) for an unacknowledged incident."""
        with Session(self.engine) as session:
            incident = incidents.get(session, event.incident_id)
        if not incident.slack_ts or not incident.slack_channel:
            return
        group = self.config.slack.oncall_groups.get(incident.slack_channel)
        who = f"<!subteam^{group}>" if group else "<!here>"
        minutes = event.unacknowledged_seconds / 60
        self.client.chat_postMessage(
            channel=incident.slack_channel,
            thread_ts=incident.slack_ts,
            text=f"{who} incident #{incident.id} ({blocks.escape(incident.severity)}) is still not "
            f"acknowledged after {minutes:.0f} min",
        )

    def rollback_news(self, event: RollbackFinished) -> None:
        """Each rollback outcome (done, failed, recovered, not recovered) in the incident's thread."""
        if event.incident_id is None:
            return
        self.update(event.incident_id, blocks.escape(event.text))  # model, versions, target output
        if event.state == "not_recovered" and event.undo_to is not None:
            with Session(self.engine) as session:
                incident = incidents.get(session, event.incident_id)
            if incident.slack_channel and incident.slack_ts:
                undo = blocks.rollback_button(event.incident_id, event.undo_to, event.environment)
                self.client.chat_postMessage(
                    channel=incident.slack_channel,
                    thread_ts=incident.slack_ts,
                    text=f"The burn did not stop. Undo: back to version {blocks.escape(event.undo_to)}?",
                    blocks=[
                        {"type": "section", "text": {"type": "mrkdwn", "text": "The burn did not stop."}},
                        {"type": "actions", "elements": [undo]},
                    ],
                )

    def _run(self, what: str, fn: Any, *args: Any) -> None:
        def task() -> None:
            try:
                fn(*args)
            except SlackApiError as exc:
                log.warning("Slack call failed", extra={"what": what, "error": exc.response.get("error")})
            except Exception:
                log.exception("Slack notification failed", extra={"what": what})

        self.pool.submit(task)

    def subscribe(self, dispatcher: Dispatcher) -> None:
        dispatcher.subscribe(IncidentOpened, lambda e: self._run("post", self.post, e.incident_id))
        dispatcher.subscribe(
            IncidentStatusChanged,
            lambda e: self._run(
                "update",
                self.update,
                e.incident_id,
                status_line(e),
            ),
        )
        dispatcher.subscribe(
            IncidentUpdated,
            lambda e: self._run(
                "update",
                self.update,
                e.incident_id,
                changes_line(e),
            ),
        )
        dispatcher.subscribe(IncidentEscalated, lambda e: self._run("remind", self.remind, e))
        dispatcher.subscribe(RollbackFinished, lambda e: self._run("rollback", self.rollback_news, e))

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def status_line(event: IncidentStatusChanged) -> str:
    """`triggered → acknowledged by @ana`: the actor is mentioned only when it is a Slack user id (a
    Slack click); an API caller's free-text actor is left out rather than shown as a fake mention."""
    line = f"{blocks.escape(event.old)} → {blocks.escape(event.new)}"
    if event.actor is not None and blocks.USER_ID.fullmatch(event.actor):
        line += f" by {blocks.user(event.actor)}"
    return line


def changes_line(event: IncidentUpdated) -> str:
    """`severity: SEV1, commander: @ana`: every value escaped (API callers set them), a commander that is
    a Slack user id mentioned."""
    return ", ".join(
        f"{blocks.escape(key)}: {blocks.user(value) if key == 'commander' else blocks.escape(value)}"
        for key, value in event.changes.items()
    )
