"""The 并单 threshold separates a labelled set of letter pairs (tests/letters/duplicates/):
the same matter resent or reworded, short and long, against other matters about the same
place; and a long repeat is linked, where difflib's junk heuristic lost it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from gateway.contract.config import RoutingConfig, load_config
from gateway.core.duplicates import similarity
from tests.gateway.test_duplicates import Routes, Stored, repeats, store  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
PAIRS: list[dict[str, Any]] = yaml.safe_load(
    (REPO / "tests/letters/duplicates/pairs.yaml").read_text(encoding="utf-8")
)
LONG = [p for p in PAIRS if min(len(p["a"]), len(p["b"])) > 200]


def share_right(threshold: float) -> float:
    return sum((similarity(p["a"], p["b"]) >= threshold) == p["same"] for p in PAIRS) / len(PAIRS)


def test_the_set_has_both_kinds_short_and_long() -> None:
    assert len(PAIRS) >= 80 and len({p["id"] for p in PAIRS}) == len(PAIRS)
    assert 30 <= sum(p["same"] for p in PAIRS) <= len(PAIRS) - 30
    assert {p["same"] for p in LONG} == {True, False} and len(LONG) >= 6


@pytest.mark.parametrize(
    "threshold",
    [
        RoutingConfig().duplicate_similarity,
        load_config(REPO / "config.yaml", environ={}).routing.duplicate_similarity,
    ],
    ids=["default", "config.yaml"],
)
def test_the_threshold_separates_the_labelled_pairs(threshold: float) -> None:
    assert share_right(threshold) >= 0.95


def test_the_old_threshold_would_not() -> None:
    """0.6, the threshold of difflib's ratio, leaves too many rewordings unlinked."""
    assert share_right(0.6) < 0.95


def test_a_long_repeat_is_linked(engine: Engine, repeats: Routes) -> None:  # noqa: F811
    """Another parent's account of the same kindergarten: 0.51 alike to rapidfuzz, 0.30 to
    difflib (0.39 without its junk heuristic, whose matching blocks are no longest common
    subsequence); beside another matter about the same place."""
    pair = next(p for p in PAIRS if p["id"] == "long-reworded-kindergarten")
    assert min(len(pair["a"]), len(pair["b"])) > 200
    (original,) = store(engine, [Stored(pair["a"], 5, "叙州区", "+8613900139000")])
    other = next(p for p in PAIRS if p["id"] == "long-other-kindergarten")
    store(engine, [Stored(other["b"], 4, "叙州区", "+8613700137000")])

    assert repeats(Stored(pair["b"], 0, "叙州区", "+8613800138000", status="received")) == (
        original
    )
