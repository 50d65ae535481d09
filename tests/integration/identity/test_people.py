"""The API acts as the person whose token it is: two people for a two-person change, the commander for a
rollback, a scope as the ceiling of what a credential reaches. On both databases, through a real server."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.main import create_app
from tests.conftest import API_TOKEN, People, bearer, make_settings
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
AUTOMATION = bearer(API_TOKEN)


def config(marker: Path, **automation: str) -> dict[str, Any]:
    """ranker: prod needs two people; staging lets ANA, BOB and `ci` roll back; eu needs the commander;
    ap needs both, among three people."""
    # Each call of the target appends the version it was asked to serve: the change happened, once.
    argv = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"]
    target = {"kind": "command", "argv": [*argv, str(marker), "{to}"]}
    prod = {"target": target, "rollback": ["U0ANA", "U0BOB"], "two_person": True, "verify_for": 3600}
    staging = {"target": target, "rollback": ["U0ANA", "U0BOB", "ci"], "verify_for": 3600}
    commanded = {
        "target": target,
        "rollback": ["U0ANA", "U0BOB"],
        "promote": ["U0ANA", "U0BOB"],
        "require_commander": True,
        "verify_for": 3600,
    }
    both = commanded | {"rollback": ["U0ANA", "U0BOB", "U0CAROL"], "two_person": True}
    environments = {"prod": prod, "staging": staging, "eu": commanded, "ap": both}
    models = {"ranker": {"environments": environments}, "scorer": {"environments": {"eu": commanded}}}
    return {"models": models, **({"automation": automation} if automation else {})}


Serve = Callable[..., httpx.Client]


@pytest.fixture
def serve(tmp_path: Path, database_url: str) -> Iterator[Serve]:
    """A server on the test's database with the config above (and `automation:` as given)."""
    with contextlib.ExitStack() as stack:

        def start(**automation: str) -> httpx.Client:
            folder = tmp_path / f"server-{len(automation)}-{'-'.join(automation.values())}"
            folder.mkdir()
            (folder / "sloguard.yaml").write_text(
                yaml.safe_dump(config(tmp_path / "target.txt", **automation))
            )
            settings = make_settings(folder, database_url=database_url)
            server = stack.enter_context(UvicornThread(create_app(settings)))
            return stack.enter_context(httpx.Client(base_url=f"{server.url}/api/v1", timeout=20))

        yield start


@pytest.fixture
def people(database_url: str) -> People:
    return People(database_url)


def changes(tmp_path: Path) -> list[str]:
    marker = tmp_path / "target.txt"
    return marker.read_text().split() if marker.exists() else []


def token_id(http: httpx.Client, headers: dict[str, str]) -> int:
    me = http.get("/whoami", headers=headers)
    assert me.status_code == 200, me.text
    found: int = me.json()["token_id"]
    return found


def test_one_person_proposes_another_confirms_and_nobody_confirms_their_own(
    serve: Serve, people: People, tmp_path: Path
) -> None:
    http = serve()
    ana, bob = people("U0ANA", "change"), people("U0BOB", "change")
    assert http.get("/whoami", headers=ana).json() == {
        "actor": "U0ANA",
        "via": "token",
        "token_id": token_id(http, ana),
        "scope": "change",
    }

    opened = http.post(
        "/incidents", json={"title": "ranker bad", "model": "ranker", "environment": "prod"}, headers=bob
    )
    assert opened.status_code == 201, opened.text
    proposed = http.post(
        "/rollbacks", json={"model": "ranker", "environment": "prod", "to_version": "6"}, headers=ana
    )
    assert proposed.status_code == 201, proposed.text
    action = proposed.json()
    assert (action["state"], action["actor"], action["incident_id"]) == (
        "proposed",
        "U0ANA",
        opened.json()["id"],
    )
    assert [(a["step"], a["actor"], a["token_id"]) for a in action["audit"]] == [
        ("proposed", "U0ANA", token_id(http, ana))
    ]

    # The proposer cannot be the second person: not with the same token, not with another one of theirs.
    for own in (ana, people("U0ANA", "admin")):
        refused = http.post(f"/rollbacks/{action['id']}/confirm", headers=own)
        assert refused.status_code == 403, refused.text
        assert "needs a second person" in refused.json()["detail"]
    # Nor can another person's token claim to be someone else in the body.
    forged = http.post(f"/rollbacks/{action['id']}/confirm", json={"actor": "U0ANA"}, headers=bob)
    assert forged.status_code == 403, forged.text
    assert forged.json()["detail"].startswith("actor: this credential acts as U0BOB")
    assert changes(tmp_path) == []
    assert http.get(f"/rollbacks/{action['id']}", headers=AUTOMATION).json()["state"] == "proposed"

    confirmed = http.post(f"/rollbacks/{action['id']}/confirm", headers=bob)
    assert confirmed.status_code == 200, confirmed.text
    done = confirmed.json()
    assert (done["state"], done["actor"], done["approver"]) == ("succeeded", "U0ANA", "U0BOB")
    assert ("executing", "U0BOB", token_id(http, bob)) in [
        (a["step"], a["actor"], a["token_id"]) for a in done["audit"]
    ]
    assert changes(tmp_path) == ["6"]
    # The review draft says who proposed and who confirmed.
    draft = http.get(f"/incidents/{opened.json()['id']}/postmortem", headers=AUTOMATION)
    assert draft.status_code == 200, draft.text
    assert (
        "rollback of ranker in prod from unknown to 6 by U0ANA, confirmed by U0BOB: **succeeded**"
        in draft.text
    )


def test_a_body_actor_naming_someone_else_is_refused_and_changes_nothing(
    serve: Serve, people: People
) -> None:
    http = serve()
    ana = people("U0ANA", "change")
    body = {"model": "ranker", "environment": "staging", "to_version": "5", "actor": "U0BOB"}
    refused = http.post("/rollbacks", json=body, headers=ana)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == "actor: this credential acts as U0ANA; it cannot act as 'U0BOB'"
    declared = http.post("/incidents", json={"title": "scores wrong", "actor": "U0BOB"}, headers=ana)
    assert declared.status_code == 403, declared.text
    assert http.get("/incidents", headers=AUTOMATION).json() == []
    # Naming oneself is allowed (old clients), and the stored actor is the token's owner either way.
    own = http.post("/incidents", json={"title": "scores wrong", "actor": "U0ANA"}, headers=ana)
    assert own.status_code == 201, own.text
    assert [(e["actor"], e["token_id"]) for e in own.json()["timeline"]] == [("U0ANA", token_id(http, ana))]


def test_scopes_are_a_ceiling_and_permissions_still_apply(
    serve: Serve, people: People, tmp_path: Path
) -> None:
    http = serve()
    staging = {"model": "ranker", "environment": "staging", "to_version": "5"}
    # A responder may run the incident but not change a model, though sloguard.yaml lists them.
    respond = people("U0ANA", "respond")
    refused = http.post("/rollbacks", json=staging, headers=respond)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"].startswith("scope: this credential's scope is respond;")
    assert http.post("/incidents", json={"title": "scores wrong"}, headers=respond).status_code == 201
    # A `change` token does not reach beyond the model's permission list.
    carol = http.post("/rollbacks", json=staging, headers=people("U0CAROL", "change"))
    assert carol.status_code == 403, carol.text
    assert carol.json()["detail"] == "you may not rollback ranker in staging; ask <@U0ANA>, <@U0BOB>, ci"
    # The automation identity reads, by default, and posts nothing.
    assert http.get("/incidents", headers=AUTOMATION).status_code == 200
    for path, body in (("/incidents", {"title": "from ci"}), ("/rollbacks", staging)):
        posted = http.post(path, json=body, headers=AUTOMATION)
        assert posted.status_code == 403, posted.text
        assert posted.json()["detail"].startswith("scope: this credential's scope is read;")
    assert http.get("/whoami", headers=AUTOMATION).json() == {
        "actor": "automation",
        "via": "automation",
        "token_id": None,
        "scope": "read",
    }
    assert len(http.get("/incidents", headers=AUTOMATION).json()) == 1
    assert changes(tmp_path) == []


def test_automation_rolls_back_only_where_its_name_is_listed(serve: Serve, tmp_path: Path) -> None:
    http = serve(name="ci", scope="change")
    prod = http.post(
        "/rollbacks", json={"model": "ranker", "environment": "eu", "to_version": "5"}, headers=AUTOMATION
    )
    assert prod.status_code == 403, prod.text
    assert prod.json()["detail"] == "you may not rollback ranker in eu; ask <@U0ANA>, <@U0BOB>"
    staging = {"model": "ranker", "environment": "staging", "to_version": "5", "confirm": True}
    done = http.post("/rollbacks", json=staging, headers=AUTOMATION)
    assert done.status_code == 201, done.text
    assert (done.json()["state"], done.json()["actor"], done.json()["approver"]) == ("succeeded", "ci", "ci")
    assert [a["token_id"] for a in done.json()["audit"]] == [None] * len(done.json()["audit"])
    assert changes(tmp_path) == ["5"]


def test_require_commander_holds_with_and_without_the_incident_id(
    serve: Serve, people: People, tmp_path: Path
) -> None:
    http = serve()
    ana, bob = people("U0ANA", "change"), people("U0BOB", "change")
    change = {"model": "ranker", "environment": "eu", "to_version": "5"}
    opened = http.post(
        "/incidents", json={"title": "ranker slow", "model": "ranker", "environment": "eu"}, headers=bob
    )
    assert opened.status_code == 201, opened.text
    incident = opened.json()["id"]
    # Nobody commands it yet: nobody may change the model until someone leads.
    leaderless = http.post("/rollbacks", json=change, headers=ana)
    assert leaderless.status_code == 403, leaderless.text
    assert "has none yet: acknowledge it" in leaderless.json()["detail"]
    acked = http.patch(f"/incidents/{incident}", json={"status": "acknowledged"}, headers=ana)
    assert (acked.status_code, acked.json()["commander"]) == (200, "U0ANA")  # whoever acknowledges leads

    expected = f"in eu only the incident commander <@U0ANA> may rollback ranker (incident {incident})"
    for body in (change | {"incident_id": incident}, change):
        refused = http.post("/rollbacks", json=body, headers=bob)
        assert refused.status_code == 403, (body, refused.text)
        assert refused.json()["detail"] == expected
    # Nor does a promotion into eu, a newer incident of his own, another model's incident or taking
    # over the command get Bob past it.
    promoted = http.post("/rollbacks", json=change | {"kind": "promote"}, headers=bob)
    assert promoted.status_code == 403, promoted.text
    assert promoted.json()["detail"].startswith("in eu only the incident commander <@U0ANA> may promote")
    mine = {"title": "mine", "model": "ranker", "environment": "eu", "commander": "U0BOB"}
    assert http.post("/incidents", json=mine, headers=bob).status_code == 201
    assert http.post("/rollbacks", json=change, headers=bob).json()["detail"] == expected
    other = http.post("/incidents", json=mine | {"model": "scorer"}, headers=bob).json()["id"]
    elsewhere = http.post("/rollbacks", json=change | {"incident_id": other}, headers=bob)
    assert elsewhere.status_code == 409, elsewhere.text
    assert elsewhere.json()["detail"].startswith(f"incident {other} is about scorer in eu environment")
    takeover = http.patch(f"/incidents/{incident}", json={"commander": "U0BOB"}, headers=bob)
    assert takeover.status_code == 403, takeover.text
    assert takeover.json()["detail"] == f"only the commander <@U0ANA> hands incident {incident} over"
    assert changes(tmp_path) == []

    # The commander, naming no incident, rolls back within the model's first open one: its timeline says so.
    done = http.post("/rollbacks", json=change | {"confirm": True}, headers=ana)
    assert done.status_code == 201, done.text
    assert (done.json()["incident_id"], done.json()["state"]) == (incident, "succeeded")
    assert changes(tmp_path) == ["5"]
    timeline = http.get(f"/incidents/{incident}", headers=ana).json()["timeline"]
    rollback_rows = [(e["actor"], e["token_id"]) for e in timeline if e["kind"] == "rollback"]
    assert rollback_rows and set(rollback_rows) == {("U0ANA", token_id(http, ana))}

    # She hands over; once every incident of ranker in eu is resolved, the permission list decides.
    handed = http.patch(f"/incidents/{incident}", json={"commander": "U0BOB"}, headers=ana)
    assert (handed.status_code, handed.json()["commander"]) == (200, "U0BOB")
    for number in (incident, incident + 1):
        resolved = http.patch(f"/incidents/{number}", json={"status": "resolved"}, headers=bob)
        assert resolved.status_code == 200, resolved.text
    again = http.post("/rollbacks", json=change | {"to_version": "4"}, headers=ana)
    assert again.status_code == 201, again.text
    assert again.json()["incident_id"] is None


def test_with_two_people_and_the_commander_the_commander_is_one_of_the_two(
    serve: Serve, people: People, tmp_path: Path
) -> None:
    http = serve()
    ana, bob, carol = people("U0ANA", "change"), people("U0BOB", "change"), people("U0CAROL", "change")
    opened = http.post(
        "/incidents",
        json={"title": "ranker slow", "model": "ranker", "environment": "ap", "commander": "U0ANA"},
        headers=ana,
    )
    assert opened.status_code == 201, opened.text
    change = {"model": "ranker", "environment": "ap", "to_version": "5"}
    # Bob and Carol, neither of them commanding, cannot make the change between them.
    first = http.post("/rollbacks", json=change, headers=bob).json()
    refused = http.post(f"/rollbacks/{first['id']}/confirm", headers=carol)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"].startswith("in ap only the incident commander <@U0ANA> may rollback")
    # The commander confirming what Bob proposed is two people, one of them commanding.
    confirmed = http.post(f"/rollbacks/{first['id']}/confirm", headers=ana)
    assert (confirmed.status_code, confirmed.json()["state"]) == (200, "succeeded"), confirmed.text
    # And so is the commander proposing and Bob confirming.
    second = http.post("/rollbacks", json=change | {"to_version": "4"}, headers=ana).json()
    confirmed = http.post(f"/rollbacks/{second['id']}/confirm", headers=bob)
    assert (confirmed.status_code, confirmed.json()["approver"]) == (200, "U0BOB"), confirmed.text
    assert changes(tmp_path) == ["5", "4"]


def test_notes_and_action_items_carry_who_wrote_them(serve: Serve, people: People) -> None:
    http = serve()
    ana, bob = people("U0ANA", "respond"), people("U0BOB", "respond")
    incident = http.post("/incidents", json={"title": "scores wrong"}, headers=ana).json()["id"]
    noted = http.post(f"/incidents/{incident}/timeline", json={"text": "flag rolled back"}, headers=bob)
    assert noted.status_code == 201, noted.text
    assert (noted.json()["actor"], noted.json()["token_id"]) == ("U0BOB", token_id(http, bob))
    item = http.post(
        f"/incidents/{incident}/action-items",
        json={"text": "alert on drift", "owner": "U0CAROL"},
        headers=ana,
    )
    assert item.status_code == 201, item.text
    timeline = http.get(f"/incidents/{incident}", headers=ana).json()["timeline"]
    (row,) = [e for e in timeline if e["kind"] == "action_item"]
    assert (row["actor"], row["token_id"], row["data"]) == (
        "U0ANA",
        token_id(http, ana),
        {"owner": "U0CAROL"},
    )


def test_an_admin_makes_lists_and_revokes_tokens_through_the_api(serve: Serve, people: People) -> None:
    http = serve()
    admin = people("U0ANA", "admin")
    # Through the API one makes one's own tokens: an admin making Bob's could act as Bob.
    for_bob = http.post("/tokens", json={"user": "U0BOB", "scope": "respond"}, headers=admin)
    assert for_bob.status_code == 403, for_bob.text
    assert for_bob.json()["detail"].startswith("user: through the API you make tokens for yourself (U0ANA)")
    made = http.post(
        "/tokens", json={"user": "U0ANA", "scope": "respond", "name": "ci laptop"}, headers=admin
    )
    assert made.status_code == 201, made.text
    body = made.json()
    token = body.pop("token")
    assert re.fullmatch(r"sloguard_pat_[0-9A-Za-z]{38}", token)
    assert (body["user"], body["scope"], body["state"], body["created_by"]) == (
        "U0ANA",
        "respond",
        "active",
        "U0ANA",
    )
    expires = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["created_at"])
    assert expires == timedelta(days=90)
    assert http.get("/whoami", headers=bearer(token)).json() == {
        "actor": "U0ANA",
        "via": "token",
        "token_id": body["id"],
        "scope": "respond",
    }
    listed = http.get("/tokens", params={"user": "U0ANA"}, headers=admin)
    assert [row["id"] for row in listed.json()] == [token_id(http, admin), body["id"]]
    assert http.get("/tokens", params={"user": "U0BOB"}, headers=admin).json() == []
    assert token not in listed.text and "token_hash" not in listed.text

    for wrong, field in (
        ({"user": "alice", "scope": "read"}, "user"),
        ({"user": "U0ANA", "scope": "root"}, "scope"),
        ({"user": "U0ANA", "scope": "read", "expires": "soon"}, "expires"),
        ({"user": "U0ANA", "scope": "read", "expires": "0d"}, "expires"),
        ({"user": "U0ANA", "scope": "read", "name": "tab\there"}, "name"),
        ({"user": "U0ANA", "scope": "read", "name": "\u202e" * 101}, "name"),
    ):
        refused = http.post("/tokens", json=wrong, headers=admin)
        assert refused.status_code == 422, (wrong, refused.text)
        assert [error["loc"] for error in refused.json()["detail"]] == [["body", field]], refused.text
    assert len(http.get("/tokens", headers=admin).json()) == 2  # nothing made by the refusals

    # Below admin, the token routes are out of reach, even for one's own tokens.
    for method, path in (("GET", "/tokens"), ("POST", "/tokens"), ("DELETE", f"/tokens/{body['id']}")):
        refused = http.request(method, path, json={} if method == "POST" else None, headers=bearer(token))
        assert refused.status_code == 403, refused.text
    revoked = http.delete(f"/tokens/{body['id']}", headers=admin)
    assert (revoked.status_code, revoked.json()["state"], revoked.json()["revoked_by"]) == (
        200,
        "revoked",
        "U0ANA",
    )
    assert http.get("/whoami", headers=bearer(token)).json() == {"detail": "this token was revoked"}
    assert http.delete("/tokens/999", headers=admin).json() == {"detail": "token 999 not found"}


def test_changing_and_removing_an_action_item_is_on_the_timeline_with_who_did_it(
    serve: Serve, people: People
) -> None:
    http = serve()
    ana, bob = people("U0ANA", "respond"), people("U0BOB", "respond")
    incident = http.post("/incidents", json={"title": "scores wrong"}, headers=ana).json()["id"]
    item = http.post(
        f"/incidents/{incident}/action-items", json={"text": "alert on drift"}, headers=ana
    ).json()
    changed = http.patch(f"/incidents/{incident}/action-items/{item['id']}", json={"done": True}, headers=bob)
    assert changed.status_code == 200, changed.text
    removed = http.delete(f"/incidents/{incident}/action-items/{item['id']}", headers=bob)
    assert removed.status_code == 204, removed.text
    timeline = http.get(f"/incidents/{incident}", headers=ana).json()["timeline"]
    rows = [(e["actor"], e["token_id"], e["text"]) for e in timeline if e["kind"] == "action_item"]
    assert rows == [
        ("U0ANA", token_id(http, ana), "action item: alert on drift"),
        ("U0BOB", token_id(http, bob), f"action item {item['id']} updated: done"),
        ("U0BOB", token_id(http, bob), f"action item {item['id']} removed: alert on drift"),
    ]
