"""Form tokens, rate limits and the citizen's address behind proxies."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from channels.web.guard import FormTokens, TokenError, client_ip
from gateway.contract.limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_is_good_for_its_browser_between_the_fill_time_and_its_age() -> None:
    clock = Clock()
    tokens = FormTokens(b"k", min_fill_seconds=3, max_age_seconds=3600, clock=clock)
    token = tokens.issue("browser-a")
    with pytest.raises(TokenError, match="提交过快"):
        tokens.check(token, "browser-a")
    clock.now += 5
    assert tokens.check(token, "browser-a").nonce == token.split(".")[1]
    with pytest.raises(TokenError):
        tokens.check(token, "browser-b")
    with pytest.raises(TokenError):
        FormTokens(b"other", 0, 3600, clock).check(token, "browser-a")
    clock.now += 3600
    with pytest.raises(TokenError, match="过期"):
        tokens.check(token, "browser-a")
    for junk in ("", "...", "x.y.z", "1.2"):
        with pytest.raises(TokenError):
            tokens.check(junk, "browser-a")


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda t: t + "é", id="signature-not-ascii"),
        pytest.param(lambda t: t[:-2] + "ＡＢ", id="signature-of-fullwidth-letters"),
        pytest.param(lambda t: "١" + t, id="time-of-arabic-indic-digits"),
    ],
)
def test_a_token_with_characters_no_token_has_is_refused_in_words(spoil: object) -> None:
    # hmac.compare_digest raised TypeError for a str that is not ASCII: a 500.
    tokens = FormTokens(b"k", min_fill_seconds=0, max_age_seconds=3600, clock=Clock())
    with pytest.raises(TokenError, match="表单无效"):
        tokens.check(spoil(tokens.issue("browser-a")), "browser-a")  # type: ignore[operator]


def test_a_reissued_token_keeps_the_forms_key() -> None:
    tokens = FormTokens(b"k", 0, 3600)
    assert tokens.check(tokens.issue("b", "same-key"), "b").nonce == "same-key"


def test_the_limit_slides_with_time() -> None:
    clock = Clock()
    limit = RateLimiter(2, 60, clock)
    for _ in range(2):
        assert not limit.blocked("ip")
        limit.hit("ip")
    assert limit.blocked("ip") and not limit.blocked("other")
    clock.now += 61
    assert not limit.blocked("ip")


def request_from(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    proxies = ["10.0.0.0/8"]
    assert client_ip(request_from("203.0.113.5", "1.2.3.4"), proxies) == "203.0.113.5"
    assert client_ip(request_from("10.0.0.2", "198.51.100.7"), proxies) == "198.51.100.7"
    # A citizen cannot name an address of their choosing in front of the real one.
    spoofed = request_from("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.9")
    assert client_ip(spoofed, proxies) == "198.51.100.7"
