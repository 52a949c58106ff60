"""The web call's token: only the site's secret makes one, it names the number typed on the
page, and it is good for a short while."""

from __future__ import annotations

import pytest

from gateway.contract import call_tokens
from gateway.contract.call_tokens import CallTokenError

SECRET = b"the site's secret"


def test_a_token_carries_the_typed_number_or_nobody() -> None:
    assert call_tokens.check(SECRET, call_tokens.issue(SECRET, "+8613800138000"), 60).phone == (
        "+8613800138000"
    )
    assert call_tokens.check(SECRET, call_tokens.issue(SECRET, None), 60).phone is None


def test_two_tokens_for_the_same_number_differ() -> None:
    assert call_tokens.issue(SECRET, "13800138000") != call_tokens.issue(SECRET, "13800138000")


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (call_tokens.issue(b"another secret", "13800138000"), "bad signature"),
        ("", "malformed"),
        ("no-dot", "malformed"),
        ("电话.签名", "malformed"),
    ],
)
def test_a_token_not_from_the_site_is_refused(token: str, why: str) -> None:
    with pytest.raises(CallTokenError, match=why):
        call_tokens.check(SECRET, token, 60)


def test_a_changed_number_breaks_the_signature() -> None:
    token = call_tokens.issue(SECRET, "13800138000", now=1_000)
    body, signature = token.split(".")
    forged = call_tokens.issue(SECRET, "13900000000", now=1_000).split(".")[0]
    with pytest.raises(CallTokenError, match="bad signature"):
        call_tokens.check(SECRET, f"{forged}.{signature}", 60, now=1_010)
    assert call_tokens.check(SECRET, f"{body}.{signature}", 60, now=1_010).phone == "13800138000"


def test_an_old_token_is_refused() -> None:
    token = call_tokens.issue(SECRET, None, now=1_000)
    assert call_tokens.check(SECRET, token, 120, now=1_120).issued == 1_000
    with pytest.raises(CallTokenError, match="expired"):
        call_tokens.check(SECRET, token, 120, now=1_121)
