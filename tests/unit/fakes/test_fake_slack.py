"""The Slack stand-in answers the real `slack_sdk.WebClient` as Slack does, and fails as networks do."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.slack import FakeSlack

EVENT = {"event_type": "sloguard_outbox", "event_payload": {"key": "incident-1-post"}}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


def client(fake: FakeSlack, timeout: int = 5) -> WebClient:
    return WebClient(token="xoxb-test", base_url=fake.api_url(), retry_handlers=[], timeout=timeout)


def error_of(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


def test_a_post_with_metadata_is_in_history_only_when_metadata_is_asked_for(fake: FakeSlack) -> None:
    web = client(fake)
    posted = web.chat_postMessage(channel="C-INCIDENTS", text="declared", metadata=EVENT)
    assert posted["channel"] == "C-INCIDENTS"
    # Slack's ts is its clock (seconds since the epoch): within a second or two of now.
    assert abs(float(posted["ts"]) - time.time()) < 5

    with_metadata = web.conversations_history(channel="C-INCIDENTS", include_all_metadata=True)
    (message,) = with_metadata["messages"]
    assert message["ts"] == posted["ts"]
    assert message["metadata"] == EVENT
    assert message["user"] == "UBOT" and message["bot_id"] == "B1" and message["type"] == "message"

    (plain,) = web.conversations_history(channel="C-INCIDENTS")["messages"]
    assert "metadata" not in plain
    assert fake.message("C-INCIDENTS", posted["ts"])["metadata"] == EVENT  # type: ignore[index]


def test_metadata_in_a_form_body_arrives_as_a_json_string_and_is_stored_as_a_dict(fake: FakeSlack) -> None:
    web = client(fake)
    form = {"channel": "C1", "text": "x", "metadata": json.dumps(EVENT), "blocks": "[]"}
    web.api_call("chat.postMessage", params=form)
    assert fake.called("chat.postMessage")[0]["metadata"] == EVENT
    history = web.api_call("conversations.history", params={"channel": "C1", "include_all_metadata": "true"})
    assert history["messages"][0]["metadata"] == EVENT
    bad = error_of(lambda: web.chat_postMessage(channel="C1", text="x", metadata={"event_payload": {}}))
    assert bad.response["error"] == "invalid_metadata_format"


def test_an_unknown_channel_has_no_history(fake: FakeSlack) -> None:
    error = error_of(lambda: client(fake).conversations_history(channel="CNOPE"))
    assert error.response["error"] == "channel_not_found"


def test_history_pages_newest_first_inside_oldest_and_latest(fake: FakeSlack) -> None:
    web = client(fake)
    stamps = [web.chat_postMessage(channel="C1", text=f"m{i}")["ts"] for i in range(5)]
    first = web.conversations_history(channel="C1", limit=2)
    assert [m["ts"] for m in first["messages"]] == [stamps[4], stamps[3]]
    assert first["has_more"] is True
    second = web.conversations_history(
        channel="C1", limit=2, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["ts"] for m in second["messages"]] == [stamps[2], stamps[1]]
    third = web.conversations_history(
        channel="C1", limit=2, cursor=second["response_metadata"]["next_cursor"]
    )
    assert [m["ts"] for m in third["messages"]] == [stamps[0]]
    assert third["has_more"] is False and third["response_metadata"]["next_cursor"] == ""

    inside = web.conversations_history(channel="C1", oldest=stamps[1], latest=stamps[3])
    assert [m["ts"] for m in inside["messages"]] == [stamps[2]]  # both ends excluded
    assert [m["text"] for m in fake.messages("C1")] == ["m0", "m1", "m2", "m3", "m4"]


def test_a_reply_is_in_its_thread_not_in_history(fake: FakeSlack) -> None:
    web = client(fake)
    parent = web.chat_postMessage(channel="C1", text="parent")["ts"]
    reply = web.chat_postMessage(channel="C1", thread_ts=parent, text="reply", metadata=EVENT)["ts"]
    later = web.chat_postMessage(channel="C1", thread_ts=parent, text="later")["ts"]

    (top,) = web.conversations_history(channel="C1")["messages"]
    assert top["ts"] == parent and top["thread_ts"] == parent and top["reply_count"] == 2

    thread = web.conversations_replies(channel="C1", ts=parent, include_all_metadata=True)["messages"]
    assert [m["ts"] for m in thread] == [parent, reply, later]
    assert thread[1]["thread_ts"] == parent and thread[1]["metadata"] == EVENT
    plain = web.conversations_replies(channel="C1", ts=parent)["messages"]
    assert all("metadata" not in m for m in plain)
    assert [m["text"] for m in fake.thread("C1", parent)] == ["reply", "later"]
    assert [m["ts"] for m in fake.messages("C1")] == [parent]

    page = web.conversations_replies(channel="C1", ts=parent, limit=2)
    assert [m["ts"] for m in page["messages"]] == [parent, reply] and page["has_more"] is True
    rest = web.conversations_replies(channel="C1", ts=parent, cursor=page["response_metadata"]["next_cursor"])
    assert [m["ts"] for m in rest["messages"]] == [later]


def test_canned_replies_still_win(fake: FakeSlack) -> None:
    canned = [{"type": "message", "ts": "1764100100.000200", "text": "pinned", "user": "U7"}]
    fake.replies[("C-INCIDENTS", "1764100100.000200")] = canned
    answer = client(fake).conversations_replies(channel="C-INCIDENTS", ts="1764100100.000200", limit=1)
    assert answer["messages"] == canned


def test_update_replaces_text_and_blocks_of_a_stored_message(fake: FakeSlack) -> None:
    web = client(fake)
    ts = web.chat_postMessage(channel="C1", text="open", metadata=EVENT)["ts"]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "acked"}}]
    web.chat_update(channel="C1", ts=ts, text="acked", blocks=blocks)
    stored = fake.message("C1", ts)
    assert stored is not None
    assert stored["text"] == "acked" and stored["blocks"] == blocks and stored["metadata"] == EVENT
    missing = error_of(lambda: web.chat_update(channel="C1", ts="1.000100", text="x"))
    assert missing.response["error"] == "message_not_found"


def test_channels_are_created_once_listed_in_pages_and_invited_to(fake: FakeSlack) -> None:
    web = client(fake)
    ids = [web.conversations_create(name=f"inc-{i}")["channel"]["id"] for i in range(3)]
    assert ids == ["C1", "C2", "C3"]
    taken = error_of(lambda: web.conversations_create(name="inc-1"))
    assert taken.response["error"] == "name_taken"

    first = web.conversations_list(limit=2, exclude_archived=True, types="public_channel")
    assert [(c["id"], c["name"]) for c in first["channels"]] == [("C1", "inc-0"), ("C2", "inc-1")]
    second = web.conversations_list(limit=2, cursor=first["response_metadata"]["next_cursor"])
    assert [c["name"] for c in second["channels"]] == ["inc-2"]
    assert second["response_metadata"]["next_cursor"] == ""

    assert web.conversations_invite(channel="C1", users="U1,U7")["ok"] is True
    assert web.conversations_invite(channel="C1", users=["U7", "U8"])["ok"] is True
    again = error_of(lambda: web.conversations_invite(channel="C1", users="U1,U8"))
    assert again.response["error"] == "already_in_channel"

    web.chat_postMessage(channel="#inc-0", text="in the room")  # a name finds the created channel
    assert web.chat_postMessage(channel="#inc-0", text="again")["channel"] == "#inc-0"
    assert [m["text"] for m in fake.messages("C1")] == ["in the room", "again"]


def test_ratelimited_chat_calls_answer_429_with_retry_after_and_change_nothing(fake: FakeSlack) -> None:
    web = client(fake)
    fake.rate_limit(2, retry_after=7)
    for _ in range(2):
        error = error_of(lambda: web.chat_postMessage(channel="C1", text="x"))
        assert error.response.status_code == 429
        assert error.response.headers["Retry-After"] == "7"
        assert error.response["error"] == "ratelimited"
    assert fake.messages() == []
    assert len(fake.called("chat.postMessage")) == 2  # recorded all the same
    assert web.chat_postMessage(channel="C1", text="x")["ok"] is True
    assert len(fake.messages("C1")) == 1


def test_down_refuses_connections_and_up_listens_on_the_same_url(fake: FakeSlack) -> None:
    web = client(fake)
    ts = web.chat_postMessage(channel="C1", text="before")["ts"]
    url = fake.url
    fake.down()
    assert not fake.is_up
    with pytest.raises(urllib.error.URLError) as caught:
        web.chat_postMessage(channel="C1", text="while down")
    assert isinstance(caught.value.reason, ConnectionRefusedError)
    timer = threading.Timer(0.1, fake.up)  # up() from another thread
    timer.start()
    timer.join()
    assert fake.url == url and fake.is_up
    assert web.chat_postMessage(channel="C1", text="after")["ok"] is True
    assert [m["ts"] for m in fake.messages("C1")][0] == ts  # the state survived


def test_flapping_alternates_and_ends_up(fake: FakeSlack) -> None:
    port = int(fake.url.rsplit(":", 1)[1])

    def reachable() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except ConnectionRefusedError:
            return False
        except ConnectionResetError:  # a connection racing the moment it goes down
            return False

    fake.flap(down_s=0.3, up_s=0.3, total_s=5.0)
    assert fake.wait_for(lambda: not reachable(), timeout=1.0)
    assert fake.wait_for(reachable, timeout=1.0)
    fake.stop_flapping()
    assert fake.is_up and reachable()
    fake.flap(down_s=0.2, up_s=0.2, total_s=0.5)
    assert fake.flapping
    assert fake.wait_for(lambda: not fake.flapping, timeout=3.0)
    assert fake.is_up
    assert client(fake).auth_test()["ok"] is True


def test_a_held_answer_stores_the_message_while_the_client_times_out(fake: FakeSlack) -> None:
    fake.hold_answer("chat.postMessage")
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        client(fake, timeout=1).chat_postMessage(channel="C1", text="lost answer", metadata=EVENT)
    assert time.monotonic() - started < 3
    assert fake.held.wait(1)
    (stored,) = fake.messages("C1")
    assert stored["text"] == "lost answer" and stored["metadata"] == EVENT
    fake.release()
    assert not fake.held.is_set()
    assert client(fake).chat_postMessage(channel="C1", text="answered")["ok"] is True  # one call held only


def test_leaving_the_stand_in_lets_a_held_call_go_without_an_answer() -> None:
    outcome: list[Exception] = []

    def post(fake: FakeSlack) -> None:
        try:
            client(fake, timeout=30).chat_postMessage(channel="C1", text="x")
        except Exception as exc:  # the test reads what the client got
            outcome.append(exc)

    with FakeSlack() as fake:
        fake.hold_answer("chat.postMessage")
        caller = threading.Thread(target=post, args=(fake,))
        caller.start()
        assert fake.held.wait(5)
        started = time.monotonic()
    assert time.monotonic() - started < 2
    caller.join(5)
    assert not caller.is_alive()
    assert outcome and not isinstance(outcome[0], SlackApiError)  # the connection closed unanswered


def test_every_call_is_logged_with_its_arrival_time(fake: FakeSlack) -> None:
    before = time.monotonic()
    client(fake).auth_test()
    client(fake).chat_postMessage(channel="C1", text="x")
    assert [name for _, name, _ in fake.log] == ["auth.test", "chat.postMessage"]
    assert before <= fake.log[0][0] <= fake.log[1][0] <= time.monotonic()
    assert fake.calls == [(name, params) for _, name, params in fake.log]
    assert fake.wait_for(lambda: len(fake.calls) == 2, timeout=0.1)
    assert not fake.wait_for(lambda: len(fake.calls) == 3, timeout=0.1)
