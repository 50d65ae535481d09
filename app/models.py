"""Every table, imported in one place so that Alembic and the tests see the whole schema."""

from __future__ import annotations

from app.changes.models import ChangeEvent
from app.chat.models import SlackDelivery, SlackUser
from app.db import Installation
from app.gates.models import GateException, GateFreeze
from app.identity.models import ApiToken
from app.incidents.models import ActionItem, AlertLink, Incident, TimelineEvent
from app.ml.models import DriftSignal, LogEvidence, ModelVersionLink
from app.outbox import OutboxRow
from app.planned.models import PlannedSilence
from app.rollback.models import AuditEvent, RollbackAction
from app.slo.models import SloSpark, SloStatus
from app.web.models import OidcLogin, WebSession

__all__ = [
    "ActionItem",
    "ApiToken",
    "AuditEvent",
    "AlertLink",
    "ChangeEvent",
    "DriftSignal",
    "GateException",
    "GateFreeze",
    "Incident",
    "Installation",
    "LogEvidence",
    "ModelVersionLink",
    "OidcLogin",
    "OutboxRow",
    "PlannedSilence",
    "RollbackAction",
    "SlackDelivery",
    "SlackUser",
    "SloSpark",
    "SloStatus",
    "TimelineEvent",
    "WebSession",
]
