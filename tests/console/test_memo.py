"""The dashboard's memo: a value is reused while fresh, made again when stale, and the
oldest goes first when it is full."""

from __future__ import annotations

from gateway.frontends.console.memo import Memo


def test_a_value_is_reused_while_fresh_and_made_again_when_stale() -> None:
    now = [0.0]
    memo: Memo[int] = Memo(size=2, clock=lambda: now[0])
    made = iter(range(100))
    assert memo.get("a", 10, lambda: next(made)) == 0
    now[0] = 9.0
    assert memo.get("a", 10, lambda: next(made)) == 0
    now[0] = 11.0
    assert memo.get("a", 10, lambda: next(made)) == 1


def test_the_least_recently_used_is_dropped_when_full() -> None:
    memo: Memo[str] = Memo(size=2, clock=lambda: 0.0)
    memo.get("a", 60, lambda: "a1")
    memo.get("b", 60, lambda: "b1")
    memo.get("a", 60, lambda: "a2")  # a used again: b is now the oldest
    memo.get("c", 60, lambda: "c1")
    assert memo.get("a", 60, lambda: "a3") == "a1"
    assert memo.get("b", 60, lambda: "b2") == "b2"
