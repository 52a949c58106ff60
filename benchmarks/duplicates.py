"""What comparing two letters costs 并单 with rapidfuzz, as a ratio of difflib's cost on the
same pairs in the same run; and how often each is right about them.

    .venv/bin/python -m benchmarks.duplicates [--chars 1500] [--rounds 5]

The pairs are the labelled set (tests/letters/duplicates/pairs.yaml: the same matter
resent or reworded, or another matter about the same place), as written and made long:
each side of a long pair is its kind's pairs one after another, cut at ``--chars``
characters (the issue measured difflib at 2-5 ms a pair of 1,500-character letters). Each
round times every pair with each comparison as routing made it: rapidfuzz's ratio of the
letters and digits with the threshold as cutoff (gateway/core/duplicates.py now), difflib's
character-count bound and then SequenceMatcher's ratio (before). A comparison is verified
when its decision at config.yaml's ``duplicate_similarity`` is the pair's label; the two
agree when they decide alike.
"""

from __future__ import annotations

import argparse
import difflib
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from rapidfuzz import fuzz

from benchmarks.common import ratio
from gateway.contract.config import load_config
from gateway.core.duplicates import words_of

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool


Same = Callable[[str, str, float], bool]


def with_rapidfuzz(a: str, b: str, threshold: float) -> bool:
    return bool(fuzz.ratio(words_of(a), words_of(b), score_cutoff=100 * threshold))


def with_difflib(a: str, b: str, threshold: float) -> bool:
    counts = Counter(b).get
    common = sum(min(n, counts(c, 0)) for c, n in Counter(a).items())
    if 2.0 * common / (len(a) + len(b)) < threshold:
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= threshold


def labelled() -> list[Pair]:
    path = ROOT / "tests/letters/duplicates/pairs.yaml"
    return [Pair(p["a"], p["b"], p["same"]) for p in yaml.safe_load(path.read_text("utf-8"))]


def made_long(pairs: list[Pair], chars: int) -> list[Pair]:
    """One long pair from each pair on: its kind's pairs after it, side by side, until each
    side holds ``chars`` characters."""
    long = []
    for same in (True, False):
        kind = [p for p in pairs if p.same is same]
        for start in range(len(kind)):
            a = b = ""
            n = start
            while len(a) < chars or len(b) < chars:
                a, b = a + kind[n % len(kind)].a + "\n", b + kind[n % len(kind)].b + "\n"
                n += 1
            long.append(Pair(a[:chars], b[:chars], same))
    return long


@dataclass
class Outcome:
    seconds: list[float]
    decisions: list[bool]


def measure(pairs: list[Pair], same: Same, threshold: float, rounds: int) -> Outcome:
    seconds = []
    decisions: list[bool] = []
    for _ in range(rounds):
        started = time.perf_counter()
        decisions = [same(p.a, p.b, threshold) for p in pairs]
        seconds.append((time.perf_counter() - started) / len(pairs))
    return Outcome(seconds, decisions)


def report(name: str, pairs: list[Pair], threshold: float, rounds: int) -> None:
    new = measure(pairs, with_rapidfuzz, threshold, rounds)
    old = measure(pairs, with_difflib, threshold, rounds)
    fast, slow = statistics.median(new.seconds), statistics.median(old.seconds)
    right_new = sum(d == p.same for d, p in zip(new.decisions, pairs, strict=True))
    right_old = sum(d == p.same for d, p in zip(old.decisions, pairs, strict=True))
    agree = sum(x == y for x, y in zip(new.decisions, old.decisions, strict=True))
    print(
        f"{name}: {len(pairs)} pairs; per pair rapidfuzz {fast * 1e6:.0f} µs, difflib "
        f"{slow * 1e6:.0f} µs: rapidfuzz/difflib {ratio(fast, slow)}; verified (right) "
        f"rapidfuzz {right_new}, difflib {right_old}; they agree on {agree}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1500, help="characters of a long letter")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is shown")
    args = parser.parse_args()
    threshold = load_config(ROOT / "config.yaml", environ={}).routing.duplicate_similarity
    pairs = labelled()
    print(f"duplicate_similarity {threshold} (config.yaml); the median of {args.rounds} rounds")
    report("as written", pairs, threshold, args.rounds)
    report(f"{args.chars} characters", made_long(pairs, args.chars), threshold, args.rounds)


if __name__ == "__main__":
    main()
