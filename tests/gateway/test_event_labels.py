"""Every kind of event the code records has a Chinese label: a letter's history in the
console (labels.EVENT_LABELS) or the administrator's audit log (console.* kinds)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from gateway.contract.labels import EVENT_LABELS
from gateway.core.workflow.chases import CHASE_EVENTS
from gateway.frontends.console.audit import AUDIT_LABELS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "channels", "ivr", "store")
# The functions that record an event, and where their kind is: a keyword or a position.
RECORDERS: dict[str, str | int] = {
    "record_event": "kind",  # store.letters
    "_event": 3,  # Workflow._event(session, letter, actor, kind, ...)
    "update": 1,  # a job's event: JobWorker.update(job, kind, ...)
    "attach": 1,  # JobWorker.attach(job, kind, file)
    "audit": 0,  # Desk.audit(kind, ...)
    "_record": 1,  # the console's administration: _record(desk, kind, ...)
}


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _kinds(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            where = RECORDERS.get(name)
            if isinstance(where, int) and len(node.args) > where:
                found = _text(node.args[where])
            else:
                found = next((_text(k.value) for k in node.keywords if k.arg == where), None)
            for keyword in node.keywords:  # intake's received event: event={"kind": ...}
                if keyword.arg == "event" and isinstance(keyword.value, ast.Dict):
                    pairs = zip(keyword.value.keys, keyword.value.values, strict=True)
                    yield from (_text(v) or "" for k, v in pairs if _text(k) == "kind")
            if found:
                yield found
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "failed_event" for t in node.targets
        ):
            yield _text(node.value) or ""


def recorded_kinds() -> set[str]:
    kinds = set(CHASE_EVENTS.values())
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            kinds.update(_kinds(ast.parse(path.read_text("utf-8"))))
    kinds.discard("")
    return kinds


def test_the_scan_finds_the_kinds_recorded_in_every_way() -> None:
    assert {
        "received",
        "assigned",
        "ocr_done",
        "transcribe_failed",
        "notified",
        "urged",
        "pii_read",
        "console.user_added",
        "console.token_revoked",
    } <= recorded_kinds()


def test_every_recorded_event_kind_has_a_chinese_label() -> None:
    unlabelled = sorted(
        kind
        for kind in recorded_kinds()
        if kind not in (AUDIT_LABELS if kind.startswith("console.") else EVENT_LABELS)
    )
    assert unlabelled == []
