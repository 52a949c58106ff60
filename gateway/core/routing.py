"""The city's rules for a new letter: its category, whether it is in scope, whether it
repeats an open matter, and which department should answer it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from gateway.contract.config import RouteRule, RoutingConfig
from gateway.core.segmentation import Segmenter, simplified
from store.models import Citizen, Letter

OPEN_STATES = ("received", "triage", "assigned", "signed", "escalated", "promised")
# What a category's keywords must weigh together in a letter to give it that category: one
# plain keyword (投诉), or two weak ones (希望 and 增设), never a weak one alone.
CATEGORY_THRESHOLD = 1.0


class Written(Protocol):
    """What a letter says, as a Letter or a row of its columns holds it."""

    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def transcript(self) -> str | None: ...
    @property
    def text_source(self) -> str | None: ...


def content(letter: Written) -> str:
    """Everything the citizen wrote or said: the subject and text they typed, or for a
    voicemail or fax (``text_source``) its transcript or OCR text alone, since their subject
    and text are the medium's labels ("电话留言", a fax server's cover note). Empty while
    that text is not known: such a letter is never judged on its labels."""
    if letter.text_source is None:
        return f"{letter.subject}\n{letter.text}\n{letter.transcript or ''}"
    return letter.transcript or ""


def body(letter: Written) -> str:
    """The text routing rules and districts are looked for in: the typed text, or the
    transcript / OCR text, counted exactly alike."""
    return letter.text if letter.text_source is None else letter.transcript or ""


@dataclass(frozen=True)
class Decision:
    department: str
    reply_type: str
    co_departments: tuple[str, ...] = ()


class Rules:
    """The routing section of config.yaml, made ready to apply (keywords known to jieba).
    Text is read in Simplified characters: a Traditional letter meets the same words."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        words = {w for ws in config.category_keywords.values() for w in ws}
        words |= {w for r in config.rules for w in r.keywords} | set(config.districts)
        s = config.screening
        words |= set(s.advertising) | set(s.abusive) | set(s.judicial)
        self.segmenter = Segmenter(words)

    def words(self, text: str) -> list[str]:
        return self.segmenter.cut(simplified(text))

    def classify(self, words: list[str]) -> str | None:
        """The category whose keywords weigh most in the words (each occurrence counted);
        None when none weighs CATEGORY_THRESHOLD. On a tie, the one the letter names first:
        a citizen says what the letter is before the story (表扬..., 帮我们...)."""
        counts = Counter(words)
        first = {w: len(words) - i for i, w in reversed(list(enumerate(words)))}
        scores = {
            category: (
                round(sum(counts[word] * weight for word, weight in weights.items()), 6),
                max((first.get(word, 0) for word in weights), default=0),
            )
            for category, weights in self.config.category_keywords.items()
        }
        best = max(scores.items(), key=lambda item: item[1], default=(None, (0.0, 0)))
        return best[0] if best[1][0] >= CATEGORY_THRESHOLD else None

    def district(self, text: str) -> str | None:
        text = simplified(text)
        return next((d for d in self.config.districts if d in text), None)

    def screen(
        self, letter: Letter, words: list[str], citizen: Citizen | None, attachments: int
    ) -> str | None:
        """The reason a letter is outside the hotline's scope (非受理范围), if it can be
        decided automatically; None leaves it to the normal flow."""
        s = self.config.screening
        text = content(letter)
        if not text.strip() and attachments == 0:
            return "empty"
        if any(w in text for w in s.abusive):
            return "malicious"
        if sum(text.count(w) for w in s.advertising) >= s.advertising_threshold:
            return "advertising"
        if any(w in text for w in s.judicial):
            return "judicial"
        # A phone number or an e-mail address reaches the citizen to verify the matter (the
        # SMS's sender, the caller): an identity. A name alone does not.
        reachable = citizen is not None and bool(citizen.phone or citizen.email)
        if letter.category in s.require_identity_for and not letter.anonymous and not reachable:
            return "unidentified"
        return None

    def route(self, category: str | None, text: str, district: str | None) -> Decision | None:
        text = simplified(text)
        for rule in self.config.rules:
            if self._matches(rule, category, text, district):
                return Decision(rule.department, rule.reply_type, tuple(rule.with_departments))
        return None

    @staticmethod
    def _matches(rule: RouteRule, category: str | None, text: str, district: str | None) -> bool:
        return (
            (not rule.categories or category in rule.categories)
            and (not rule.districts or district in rule.districts)
            and (not rule.keywords or any(k in text for k in rule.keywords))
        )
