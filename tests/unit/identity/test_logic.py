"""The token's shape and checksum, scopes as a ladder, and the failed-attempt throttle, on their own."""

from __future__ import annotations

import hashlib
import re
import zlib
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from starlette.requests import Request

from app.api import client_address
from app.config import Settings, load_file_config
from app.errors import ConfigError
from app.identity import logic
from app.identity.logic import Scope
from app.identity.throttle import Throttle

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(number: int, width: int) -> str:
    """Written here from the README's description: big-endian base62 digits, zero-padded."""
    out = ""
    while number:
        number, digit = divmod(number, 62)
        out = ALPHABET[digit] + out
    return out.rjust(width, "0")


def test_a_new_token_has_the_documented_shape_and_checksum() -> None:
    tokens = {logic.new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert re.fullmatch(r"sloguard_pat_[0-9A-Za-z]{38}", token)
        random_part, check = token[13:45], token[45:]
        assert check == base62(zlib.crc32(random_part.encode()), 6)
        assert logic.well_formed(token)
        assert logic.digest(token) == hashlib.sha256(token.encode()).hexdigest()
        assert logic.hint(token) == token[:17] + "…"


def test_a_typo_a_truncation_or_a_guess_is_not_well_formed() -> None:
    token = logic.new_token()
    typos = [token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :] for i in range(13, len(token))]
    assert not any(logic.well_formed(typo) for typo in typos)
    for wrong in (token[:-1], token + "x", token + "\n", " " + token, token.upper(), "sloguard_pat_", ""):
        assert not logic.well_formed(wrong), wrong


def test_each_scope_reaches_the_ones_below_it() -> None:
    ladder = ["read", "respond", "change", "admin"]
    for held in ladder:
        for needed in ladder:
            assert Scope(held).reaches(Scope(needed)) == (ladder.index(held) >= ladder.index(needed))


def test_a_string_name_is_an_actor_vouched_for_by_sloguard() -> None:
    person = logic.Actor("U0ANA", via="token", token_id=3)
    assert logic.Actor.of(person) is person
    assert logic.Actor.of("U0BOB") == logic.Actor("U0BOB", via="sloguard", token_id=None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ten_failures_in_a_minute_hold_an_address_until_the_oldest_is_a_minute_old() -> None:
    clock = Clock()
    throttle = Throttle(limit=10, window=60, clock=clock)
    for second in range(10):
        assert throttle.retry_after("10.0.0.1") is None
        clock.now = 1000.0 + second
        throttle.failed("10.0.0.1")
    clock.now = 1009.5
    assert throttle.retry_after("10.0.0.1") == pytest.approx(50.5)  # the first failure, at 1000, + 60
    assert throttle.retry_after("10.0.0.2") is None  # another address is not held
    clock.now = 1060.0
    assert throttle.retry_after("10.0.0.1") is None  # the first failure aged out: nine left
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == pytest.approx(1.0)  # the second, at 1001, + 60


def test_failures_spread_wider_than_the_window_never_hold_an_address() -> None:
    clock = Clock()
    throttle = Throttle(limit=10, window=60, clock=clock)
    for _ in range(100):
        clock.now += 6.7  # nine in any minute: one fewer than the limit
        throttle.failed("10.0.0.1")
        assert throttle.retry_after("10.0.0.1") is None


def test_the_addresses_remembered_are_bounded_oldest_first() -> None:
    clock = Clock()
    throttle = Throttle(limit=2, window=60, addresses=3, clock=clock)
    for address in ("a", "b", "c", "d"):
        throttle.failed(address)
        throttle.failed(address)
    assert throttle.retry_after("a") is None  # forgotten: the least recently failed of four
    assert all(throttle.retry_after(address) is not None for address in ("b", "c", "d"))


@pytest.mark.parametrize(
    ("automation", "says"),
    [
        ({"scope": "admin"}, "automation.scope"),  # one shared secret must not make tokens for anyone
        ({"name": "sloguard"}, "names a part of sloguard"),
        ({"name": "cli"}, "names a part of sloguard"),
        ({"name": "U0ANA"}, "automation.name"),  # never mistaken for a person
    ],
)
def test_the_automation_identity_cannot_be_admin_or_pass_for_sloguard_or_a_person(
    tmp_path: Path, automation: dict[str, str], says: str
) -> None:
    (tmp_path / "sloguard.yaml").write_text(yaml.safe_dump({"automation": automation}))
    with pytest.raises(ConfigError) as refused:
        load_file_config(tmp_path / "sloguard.yaml")
    assert says in str(refused.value)


def test_trusted_proxies_are_read_as_uvicorn_reads_them() -> None:
    assert Settings(trusted_proxies=" 10.1.2.3, 10.2.0.0/16 ").trusted_proxies == "10.1.2.3,10.2.0.0/16"
    for wrong in ("10.1.2.3/8", "ingress", "10.0.0.0/33"):  # host bits set: uvicorn would ignore it
        with pytest.raises(ValidationError):
            Settings(trusted_proxies=wrong)


def request_from(host: str | None) -> Request:
    return Request({"type": "http", "client": (host, 1234) if host is not None else None, "headers": []})


def test_failures_count_per_ipv4_address_per_ipv6_64_and_one_bucket_for_nonsense() -> None:
    assert client_address(request_from("203.0.113.7")) == "203.0.113.7"
    one = client_address(request_from("2001:db8:1:2:aaaa::1"))
    assert one == client_address(request_from("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::/64"
    assert client_address(request_from("2001:db8:1:3::1")) != one
    assert client_address(request_from("garbage")) == client_address(request_from(None)) == "invalid"
