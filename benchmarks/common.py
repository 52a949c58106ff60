"""What the benchmarks share so that each reports alike (issue 16): only successes it
verified count towards a rate, failures and dead client threads are printed beside it, and
every figure is a ratio against a baseline measured in the same run."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Tally:
    """One measured run: verified successes, and every way the rest went wrong."""

    verified: int = 0
    seconds: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)
    # The error that ended each client thread that ended early.
    deaths: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.verified / self.seconds if self.seconds > 0 else 0.0

    def fail(self, reason: str, n: int = 1) -> None:
        if n:
            self.failures[reason] += n

    def add(self, other: Tally) -> None:
        """Another round's outcomes (its rate is not added: take the median of rounds)."""
        self.verified += other.verified
        self.failures.update(other.failures)
        self.deaths.extend(other.deaths)

    def problems(self) -> str:
        """Failures and thread deaths in a few words: "no failures" when there were none."""
        parts = [f"{n} {reason}" for reason, n in self.failures.most_common()]
        if self.deaths:
            kinds = Counter(self.deaths)
            parts.append(
                f"{len(self.deaths)} client thread(s) died ("
                + "; ".join(f"{n}x {error}" for error, n in kinds.most_common(3))
                + ")"
            )
        return "; ".join(parts) if parts else "no failures"


def median_rate(tallies: Sequence[Tally]) -> float:
    return statistics.median(t.rate for t in tallies) if tallies else 0.0


def summed(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for t in tallies:
        total.add(t)
    return total


def ratio(measured: float, baseline: float) -> str:
    return f"{measured / baseline:.2f}" if baseline > 0 else "n/a (baseline 0)"


def race(workers: Sequence[Callable[[Callable[[], None]], None]], timeout: float = 60) -> Tally:
    """Runs each worker on its own thread; each calls the start function it is given once it
    is ready (connected), and all are released together. Returns the seconds from the
    release until the last thread ended, and the error of every thread that ended early;
    the workers count their own verified successes and failures."""
    go = threading.Barrier(len(workers) + 1, timeout=timeout)
    tally = Tally()
    lock = threading.Lock()

    def run(worker: Callable[[Callable[[], None]], None]) -> None:
        released = False

        def start() -> None:
            nonlocal released
            go.wait()
            released = True

        try:
            worker(start)
        except BaseException as exc:  # a benchmark's client boundary: reported, not raised
            with lock:
                tally.deaths.append(f"{type(exc).__name__}: {exc}"[:200])
            if not released:
                go.abort()  # the others are not held waiting for a thread that is gone

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        go.wait()  # broken: a thread died before the start, its death is in the tally
    began = time.perf_counter()
    for t in threads:
        t.join()
    tally.seconds = time.perf_counter() - began
    return tally


def postgres_schema(url: str) -> tuple[str, Callable[[], None]]:
    """A schema of its own on the server (the URL that uses it), and how to drop it."""
    schema = f"hotline_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), drop


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank; 0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]
