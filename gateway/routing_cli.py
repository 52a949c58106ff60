"""`hotline routing eval DIR`: how often the configured rules give a labelled letter its
category and its department, so a change of keywords or rules is measured, not guessed."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.cli_common import EXIT_NOT_FOUND, EXIT_USAGE, print_json, progress_bar
from gateway.contract.config import CATEGORIES, Config
from gateway.core.routing import Rules, body, content

_CHANNELS = ("phone", "sms", "email", "fax", "web")
_READ_BY = (None, "transcription", "ocr")


def add_parsers(commands: Any) -> None:
    routing = commands.add_parser("routing", help="the routing rules, measured")
    actions = routing.add_subparsers(dest="action", required=True)
    evaluate = actions.add_parser(
        "eval", help="category and department accuracy over the labelled letters in DIR"
    )
    evaluate.add_argument("directory", type=Path, help="*.yaml / *.jsonl files of letters")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    # Also after the subcommand; SUPPRESS keeps a --config given before it.
    evaluate.add_argument("--config", default=argparse.SUPPRESS, help="config file")


@dataclass(frozen=True)
class Sample:
    """A labelled letter: what the citizen wrote (as a Letter holds it) and the answers."""

    id: str
    channel: str
    subject: str
    text: str
    transcript: str | None
    text_source: str | None
    chosen: str | None  # the category the citizen chose (IVR key, web form)
    category: str
    department: str | None  # None: no rule should match (the hotline centre's triage)


class SetError(ValueError):
    """A letter file that is not a labelled set: named with the letter and the field."""


def load_samples(directory: Path) -> list[Sample]:
    """Every letter of DIR's *.yaml, *.yml and *.jsonl files, in file order."""
    samples: list[Sample] = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".jsonl"):
            continue
        records = _records(path)
        if not isinstance(records, list):
            raise SetError(f"{path}: a list of letters expected")
        samples += [_sample(path, i, record) for i, record in enumerate(records, 1)]
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise SetError(f"{directory}: two letters named {s.id!r}")
        seen.add(s.id)
    return samples


def _records(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        try:
            return yaml.safe_load(text) or []
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
            raise SetError(f"{path}: line {line}: not YAML: {exc.problem}") from exc
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SetError(f"{path}: line {number}: not JSON: {exc.msg}") from exc
    return records


def _sample(path: Path, number: int, record: Any) -> Sample:
    where = f"{path}: letter {number}"
    if not isinstance(record, dict):
        raise SetError(f"{where}: a mapping expected")
    where = f"{path}: {record.get('id', f'letter {number}')}"
    for key in ("id", "channel", "text", "category"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise SetError(f"{where}: {key} missing")
    if "department" not in record:
        raise SetError(f"{where}: department missing (null: none)")
    unknown = set(record) - {"id", "channel", "subject", "text", "read_by", "chosen"}
    unknown -= {"category", "department"}
    checks = [
        ("channel", record["channel"], _CHANNELS),
        ("read_by", record.get("read_by"), _READ_BY),
        ("category", record["category"], CATEGORIES),
        ("chosen", record.get("chosen"), (None, *CATEGORIES)),
    ]
    for key, value, allowed in checks:
        if value not in allowed:
            raise SetError(f"{where}: {key} {value!r} is not one of {allowed}")
    if unknown:
        raise SetError(f"{where}: unknown key(s) {sorted(unknown)}")
    read_by = record.get("read_by")
    # A voicemail's or a fax's words are its transcript, as intake and the jobs store them.
    return Sample(
        id=record["id"],
        channel=record["channel"],
        subject=str(record.get("subject") or ""),
        text="" if read_by else record["text"],
        transcript=record["text"] if read_by else None,
        text_source=read_by,
        chosen=record.get("chosen"),
        category=record["category"],
        department=record["department"],
    )


@dataclass(frozen=True)
class Outcome:
    sample: Sample
    category: str | None
    department: str | None


def apply(rules: Rules, sample: Sample) -> Outcome:
    """What routing decides for the letter, step by step as Screening.process does: the
    chosen category kept, else the classified one; the district; the first matching rule."""
    category = sample.chosen or rules.classify(rules.words(content(sample)))
    district = rules.district(body(sample))
    decision = rules.route(category, body(sample), district)
    return Outcome(sample, category, decision.department if decision else None)


def routing_command(config: Config, args: argparse.Namespace) -> int:
    try:
        samples = load_samples(args.directory)
    except FileNotFoundError as exc:
        print(f"hotline: {args.directory}: {exc.strerror}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (OSError, UnicodeDecodeError, SetError) as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not samples:
        print(f"hotline: no letters (*.yaml, *.jsonl) in {args.directory}", file=sys.stderr)
        return EXIT_NOT_FOUND
    rules = Rules(config.routing)
    outcomes: list[Outcome] = []
    with progress_bar("分类", len(samples), "件") as bar:
        for sample in samples:
            outcomes.append(apply(rules, sample))
            bar.update()
    report = _report(outcomes)
    if args.json:
        print_json(report)
        return 0
    for wrong in report["misclassified"]:
        e, g = wrong["expected"], wrong["got"]
        print(
            f"{wrong['id']}: category {e['category']} -> {g['category']}, "
            f"department {e['department']} -> {g['department']}"
        )
    n = report["letters"]
    print(
        f"{n} letters: category {report['category_accuracy']:.1%} "
        f"({report['category_correct']}/{n}), department {report['department_accuracy']:.1%} "
        f"({report['department_correct']}/{n})"
    )
    return 0


def _report(outcomes: list[Outcome]) -> dict[str, Any]:
    categories = sum(o.category == o.sample.category for o in outcomes)
    departments = sum(o.department == o.sample.department for o in outcomes)
    wrong = [
        {
            "id": o.sample.id,
            "expected": {"category": o.sample.category, "department": o.sample.department},
            "got": {"category": o.category, "department": o.department},
        }
        for o in outcomes
        if (o.category, o.department) != (o.sample.category, o.sample.department)
    ]
    n = len(outcomes)
    return {
        "letters": n,
        "category_correct": categories,
        "category_accuracy": round(categories / n, 4),
        "department_correct": departments,
        "department_accuracy": round(departments / n, 4),
        "misclassified": wrong,
    }
