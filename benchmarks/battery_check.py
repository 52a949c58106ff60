"""The fault battery's verdict: each contact sent against the letters stored, found by the
tag in its words, so a second letter for one contact shows as a double under any key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload

from benchmarks.battery_load import TAG, Item
from benchmarks.battery_rig import counts, say
from store.models import Letter


@dataclass
class Check:
    """Acknowledged contacts against the store, per channel."""

    sent: int = 0
    acked: int = 0
    stored: int = 0  # acknowledged and found, whole
    lost: int = 0
    doubled: int = 0  # letters beyond the first for one contact, or one key
    altered: int = 0  # found, but not what was sent (text, sender, attachment)
    unacked_stored: int = 0  # never acknowledged, stored all the same (allowed: at most once)
    on_sim: int = 0
    examples: list[str] = field(default_factory=list)


def letters_by_tag(engine: Engine) -> tuple[dict[str, list[Letter]], Counter[tuple[str, str]]]:
    with Session(engine) as session:
        letters = list(
            session.scalars(
                select(Letter).options(
                    selectinload(Letter.citizen), selectinload(Letter.attachments)
                )
            )
        )
        session.expunge_all()
    found: dict[str, list[Letter]] = {}
    keys: Counter[tuple[str, str]] = Counter()
    for letter in letters:
        keys[(letter.source, letter.external_id)] += 1
        for tag in set(TAG.findall(letter.text or "")):
            found.setdefault(tag, []).append(letter)
    return found, keys


def whole(item: Item, letter: Letter) -> str | None:
    """What differs between ``item`` as sent and ``letter`` as stored, or None."""
    if (letter.text or "").strip() != item.text.strip():
        return f"text {letter.text!r}"
    citizen = letter.citizen
    held = (citizen.email if item.channel == "email" else citizen.phone) if citizen else None
    if held is None or held.removeprefix("+86") != item.sender.removeprefix("+86"):
        return f"sender {held!r}"
    digests = sorted(a.sha256 for a in letter.attachments)
    if digests != ([item.digest] if item.digest else []):
        return f"attachments {digests}"
    if item.key and letter.external_id != item.key:
        return f"external id {letter.external_id!r}"
    return None


def check(
    engine: Engine, items: list[Item], final: bool, on_sim: Callable[[], set[str]]
) -> dict[str, Check]:
    """``final``: every contact has had its chance (left-on-SIM and lost are told apart)."""
    found, keys = letters_by_tag(engine)
    sim = on_sim() if final else set()
    result: dict[str, Check] = {}
    for item in items:
        c = result.setdefault(item.channel, Check())
        c.sent += 1
        letters = found.get(item.tag, [])
        c.doubled += max(0, len(letters) - 1)
        if not item.acked:
            c.unacked_stored += bool(letters)
            continue
        c.acked += 1
        if not letters:
            if item.channel == "gsm" and (not final or item.text in sim):
                c.on_sim += final
                continue
            c.lost += 1
            c.examples.append(f"lost {item.tag}")
            continue
        problem = whole(item, letters[0])
        if problem:
            c.altered += 1
            c.examples.append(f"{item.tag}: {problem}")
        else:
            c.stored += 1
    twice = sum(n - 1 for n in keys.values() if n > 1)
    if twice:
        result.setdefault("any", Check()).doubled += twice
    return result


def table(results: dict[str, Check], answers: dict[str, Counter[str]]) -> Check:
    """One line per channel, then the totals, which are returned."""
    total = Check()
    names = ("sent", "acked", "stored", "lost", "doubled", "altered", "on_sim")
    say(
        f"  {'channel':8} {'sent':>6} {'acked':>6} {'stored':>6} {'lost':>5} {'doubled':>7} "
        f"{'altered':>7} {'on SIM':>6}  answers"
    )
    for channel, c in sorted(results.items()):
        for name in names:
            setattr(total, name, getattr(total, name) + getattr(c, name))
        total.examples += c.examples
        say(
            f"  {channel:8} {c.sent:6} {c.acked:6} {c.stored:6} {c.lost:5} {c.doubled:7} "
            f"{c.altered:7} {c.on_sim:6}  {counts(answers.get(channel, Counter()))}"
        )
    say(
        f"  {'all':8} {total.sent:6} {total.acked:6} {total.stored:6} {total.lost:5} "
        f"{total.doubled:7} {total.altered:7} {total.on_sim:6}"
    )
    for example in total.examples[:10]:
        say(f"  ! {example}")
    return total
