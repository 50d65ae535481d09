"""The slack-bolt app: built once per FastAPI app with an explicit Web API client."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from app.chat.listeners import actions, commands, events, rollback
from app.config import Settings
from app.services import ServicesRef


def build_bolt_app(settings: Settings, ref: ServicesRef, client: AsyncWebClient) -> AsyncApp:
    """Listeners ack first. `client` carries the Web API base URL; bolt gives each request a copy with
    the bot token.

    Bolt's signature check is off: every HTTP request reaches bolt through `door.admit`, which verifies the
    signature and timestamp itself (exactly one of each, then the HMAC, then replays) and hands bolt a
    re-encoded body that the signature no longer covers. Socket Mode requests are never signed (bolt skips
    them either way).
    """
    assert settings.slack_bot_token is not None
    token = settings.slack_bot_token.get_secret_value()
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None

    async def authorize(**_: Any) -> AuthorizeResult:
        # One workspace, one bot token: no auth.test round trip in front of every first ack.
        return AuthorizeResult(enterprise_id=None, team_id=None, bot_token=token)

    app = AsyncApp(
        client=client,
        authorize=authorize,
        signing_secret=secret or "",  # Socket Mode alone has none: its requests are never signed
        process_before_response=False,
        request_verification_enabled=False,
    )
    commands.register(app, ref)
    actions.register(app, ref)
    events.register(app, ref)
    rollback.register(app, ref)
    return app
