"""Who may do what to a letter in which state: the roles, the one table of (state, action)
-> (next state, roles), and the error an action the table (or a rule) refuses raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OPERATOR, DEPARTMENT, SUPERVISOR, LEADER, SYSTEM = (
    "operator",
    "department",
    "supervisor",
    "leader",
    "system",
)
OPEN_ASSIGNMENT = ("assigned", "signed", "promised")
_ACTIVE = ("assigned", "signed", "promised")

# (state, action) -> (next state or None to stay, roles allowed)
TRANSITIONS: dict[tuple[str, str], tuple[str | None, frozenset[str]]] = {}


def _allow(states: Sequence[str], action: str, to: str | None, *roles: str) -> None:
    for state in states:
        TRANSITIONS[(state, action)] = (to, frozenset(roles))


_allow(["received"], "process", None, SYSTEM)
_allow(["received", "triage"], "reject", "rejected", OPERATOR, SYSTEM)
_allow(["received", "triage"], "assign", "assigned", OPERATOR, SYSTEM)
_allow(["triage"], "answer", "replied", OPERATOR)  # 直办
_allow(["triage"], "escalate", "escalated", OPERATOR)  # 呈办
_allow(["escalated"], "instruct", "assigned", LEADER)
_allow(["assigned"], "sign", "signed", DEPARTMENT)
_allow(["signed"], "reply_interim", "promised", DEPARTMENT)
_allow(["signed", "promised"], "reply_final", "replied", DEPARTMENT)
_allow(["assigned", "signed"], "return", "triage", DEPARTMENT)  # 退件
_allow(_ACTIVE, "opinion", None, DEPARTMENT)  # a co-department's part of a joint letter
_allow(_ACTIVE, "request_extension", None, DEPARTMENT)
_allow(_ACTIVE, "decide_extension", None, OPERATOR)
_allow(_ACTIVE, "force", None, SUPERVISOR)  # 强制办理
_allow(["replied"], "visit", None, OPERATOR, SYSTEM)  # 回访: to closed, or reopened
_allow(["received"], "take_answer", "visit_answer", SYSTEM)  # the citizen's answer to 回访
_allow(["received", "triage", *_ACTIVE, "escalated"], "reclassify", None, OPERATOR)


class WorkflowError(Exception):
    """An action the rules do not allow here; nothing was changed. ``chinese`` says the
    same to the staff in the console; str() stays English for the CLI, API and logs."""

    def __init__(self, message: str, chinese: str) -> None:
        super().__init__(message)
        self.chinese = chinese


def known(value: str, codes: Sequence[str], what: str, chinese: str) -> None:
    """Codes come from forms and the command line as well as the core: refuse a stranger
    before it is stored (one check for the CLI, the API and the console)."""
    if value not in codes:
        raise WorkflowError(
            f"unknown {what} {value!r}; known: {', '.join(codes)}", f"未知的{chinese}：{value}"
        )


@dataclass(frozen=True)
class Actor:
    role: str
    name: str
    department: str | None = None  # the department code a clerk acts for

    @property
    def label(self) -> str:
        return f"{self.role}:{self.name}"
