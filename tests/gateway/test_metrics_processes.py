"""What worker processes count reaches the gateway's /metrics: added to the gateway's own
counters under one name, kept when a worker dies, and never shared between two gateways."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from gateway.contract.config import JobsConfig
from gateway.contract.kinds import OCR, ROUTE
from gateway.engine.metrics import WORKER_COUNTS_ENV, Metrics, worker_counts_dir
from gateway.engine.workers import GiveUp, Handler, JobRunner
from store.db import make_sessionmaker
from store.jobs import JobQueue, enqueue
from store.models import Job
from tests.support.processes import ROOT


def worker(folder: Path, phone_letters: int, spool_depth: int = 0) -> None:
    """A worker process that stores ``phone_letters`` letters, then ends."""
    script = (
        "from gateway.engine.metrics import Metrics\n"
        "m = Metrics()\n"
        f"for _ in range({phone_letters}): m.letters_received.labels('phone').inc()\n"
        "m.duplicates.labels('phone').inc()\n"
        f"m.spool_depth.set({spool_depth})\n"
    )
    env = {**os.environ, WORKER_COUNTS_ENV: str(folder)}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)


def scrape(metrics: Metrics) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    page = generate_latest(metrics.registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }
    return page, samples


def test_workers_letters_are_added_to_the_gateways_own_under_one_name(tmp_path: Path) -> None:
    folder = worker_counts_dir(tmp_path / "metrics")
    worker(folder, phone_letters=2)  # then died
    worker(folder, phone_letters=3, spool_depth=5)  # its replacement
    gateway = Metrics()
    gateway.include_workers(folder)
    gateway.letters_received.labels("phone").inc()  # drained from the spool
    gateway.letters_received.labels("email").inc()

    page, samples = scrape(gateway)

    phone = ("hotline_letters_received_total", (("channel", "phone"),))
    email = ("hotline_letters_received_total", (("channel", "email"),))
    redelivered = ("hotline_contacts_redelivered_total", (("channel", "phone"),))
    assert (samples[phone], samples[email], samples[redelivered]) == (6.0, 1.0, 2.0)
    assert page.count("# TYPE hotline_letters_received_total counter") == 1
    # A worker's gauge is not the gateway's: its spool depth is read by the gateway itself.
    assert samples["hotline_spool_depth", ()] == 0.0
    assert 'pid="' not in page


def test_another_gateways_workers_are_not_counted(tmp_path: Path) -> None:
    worker(worker_counts_dir(tmp_path / "a" / "metrics"), phone_letters=4)
    mine = Metrics()
    mine.include_workers(worker_counts_dir(tmp_path / "b" / "metrics"))

    _, samples = scrape(mine)

    assert ("hotline_letters_received_total", (("channel", "phone"),)) not in samples


def test_each_run_counts_in_an_empty_folder_and_ended_runs_folders_are_removed(
    tmp_path: Path,
) -> None:
    base = tmp_path / "metrics"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    for name in (ended.stdout.strip(), str(os.getppid()), str(os.getpid()), "stray"):
        (base / name).mkdir(parents=True)
        (base / name / "counter_1.db").write_bytes(b"")

    folder = worker_counts_dir(base)

    assert folder == base / str(os.getpid()) and not any(folder.iterdir())
    # The parent of this test is running: it may be another gateway sharing the folder.
    assert sorted(p.name for p in base.iterdir()) == sorted([str(os.getppid()), str(os.getpid())])


class Done(Handler):
    def run(self, job: Job) -> None:
        pass


class Refused(Handler):
    def run(self, job: Job) -> None:
        raise GiveUp("never")


class Flaky(Handler):
    def run(self, job: Job) -> None:
        raise RuntimeError("down")


@pytest.mark.parametrize(
    ("handler", "attempts", "done", "failed"),
    [(Done(), 2, 1.0, 0.0), (Refused(), 2, 0.0, 1.0), (Flaky(), 2, 0.0, 0.0),
     (Flaky(), 1, 0.0, 1.0)],
    ids=["done", "given-up-at-once", "failed-attempt-retried", "failed-at-the-last-attempt"],
)  # fmt: skip
def test_jobs_count_as_done_when_finished_and_failed_when_given_up(
    engine: Engine, handler: Handler, attempts: int, done: float, failed: float
) -> None:
    """``attempts``: how many a job has (the one run here is its last when 1)."""
    sessions = make_sessionmaker(engine)
    metrics = Metrics()
    settings = JobsConfig(max_attempts=attempts)
    runner = JobRunner(JobQueue(sessions), metrics.count_jobs({OCR: handler}), settings)
    with sessions.begin() as session:
        enqueue(session, OCR)
    assert runner.run_one([OCR])

    _, samples = scrape(metrics)

    assert samples["hotline_jobs_done_total", (("kind", OCR),)] == done
    assert samples["hotline_jobs_failed_total", (("kind", OCR),)] == failed
    assert ("hotline_jobs_done_total", (("kind", ROUTE),)) not in samples
