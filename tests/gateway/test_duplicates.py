"""Duplicate candidates (并单) come from indexes, newest first and bounded in number, so
routing one letter costs the same however many letters are stored: the same citizen, a phone
number either letter gives (sent from or written in the words), the same district."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, text

from gateway.contract.contact import Channel
from gateway.contract.contact import Citizen as Sender
from gateway.core.duplicates import CANDIDATES, duplicate_queries, find_duplicate
from store.db import make_engine, make_sessionmaker
from store.models import Citizen, Letter, LetterPhone, note_phones
from tests.conftest import PII, Parts, make_contact
from tests.gateway.test_workflow import ROUTING, Core, core  # noqa: F401  (a fixture)
from tests.store.test_pii import BOTH

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
STREETLIGHT = "翠屏区人民路8号门口的路灯已经坏了三天，晚上很黑，请尽快修理。"
AGAIN = "翠屏区人民路8号门口的路灯坏了三天了，晚上很黑，请尽快派人修理。"
CALLER = "+8613800138000"
# Letters about the same district that repeat nothing: each about another thing.
OTHER_MATTERS = [
    "南岸西路停车场收费标准不公开",
    "酒都路楼道堆满杂物堵住通道",
    "长江大道树枝遮挡交通信号灯",
    "蜀南大道广场舞音响开到深夜",
    "北大街共享单车乱停乱放",
    "中山街绿化带被人毁坏种菜",
]


@dataclass(frozen=True)
class Stored:
    """A letter as the table holds it when a new one is routed."""

    words: str
    hours_ago: float
    district: str | None = "翠屏区"
    phone: str | None = None
    email: str | None = None
    status: str = "assigned"
    duplicate_of: int | None = None


def other_matter(n: int) -> str:
    return f"翠屏区{n}号{OTHER_MATTERS[n % len(OTHER_MATTERS)]}，第{n}次反映"


def store(engine: Engine, letters: list[Stored]) -> list[int]:
    """The letters, each with a citizen row of its own (as intake writes them), the phones
    their words give noted if they are in hand (as routing leaves them); their ids."""
    with engine.begin() as conn:
        citizens = list(
            conn.scalars(
                insert(Citizen).returning(Citizen.id, sort_by_parameter_order=True),
                [{"phone": s.phone, "email": s.email} for s in letters],
            )
        )
        first = conn.scalar(select(Letter.id).order_by(Letter.id.desc()).limit(1)) or 0
        ids = list(
            conn.scalars(
                insert(Letter).returning(Letter.id, sort_by_parameter_order=True),
                [
                    {
                        "tracking_number": f"T{first + n:013d}",
                        "verification_code": "000000",
                        "channel": "sms",
                        "source": "test",
                        "external_id": f"{first + n}",
                        "received_at": NOW - timedelta(hours=s.hours_ago),
                        "status": s.status,
                        "subject": "",
                        "text": s.words,
                        "district": s.district,
                        "citizen_id": citizen,
                        "duplicate_of_id": s.duplicate_of,
                    }
                    for n, (s, citizen) in enumerate(zip(letters, citizens, strict=True))
                ],
            )
        )
        judged = [i for i, s in zip(ids, letters, strict=True) if s.status != "received"]
        words = select(
            Letter.id, Letter.received_at, Letter.subject, Letter.text, Letter.transcript
        )
        note_phones(conn, conn.execute(words.where(Letter.id.in_(judged))).all())
        return ids


Routes = Callable[[Stored], int | None]


@pytest.fixture
def repeats(engine: Engine) -> Iterator[Routes]:
    """The letter a new one (stored "received", as intake leaves it) is linked to, if any."""
    sessions = make_sessionmaker(engine)

    def route(new: Stored) -> int | None:
        (letter_id,) = store(engine, [new])
        with sessions() as session:
            letter = session.get(Letter, letter_id)
            assert letter is not None
            original = find_duplicate(ROUTING, session, letter, NOW)
            return None if original is None else original.id

    yield route


def test_a_repeat_about_the_same_place_is_found_behind_any_number_of_letters_about_it(
    engine: Engine, repeats: Routes
) -> None:
    """A busy district's older letters in hand must not hide the matter just reported."""
    store(engine, [Stored(other_matter(n), hours_ago=2 + n / 10) for n in range(250)])
    (original,) = store(engine, [Stored(STREETLIGHT, hours_ago=1)])

    assert repeats(Stored(AGAIN, hours_ago=0, phone="+8613900139000", status="received")) == (
        original
    )


def test_the_oldest_similar_letter_in_hand_is_the_one_repeated(
    engine: Engine, repeats: Routes
) -> None:
    """One by the same phone, one by a neighbour about the same place: the older is the
    matter in hand (the other was routed before it could be linked)."""
    neighbour, same_phone = store(
        engine,
        [
            Stored(STREETLIGHT, hours_ago=5, phone="+8613900139000"),
            Stored(STREETLIGHT, hours_ago=3, district=None, phone=CALLER),
        ],
    )

    assert repeats(Stored(AGAIN, hours_ago=0, phone=CALLER, status="received")) == neighbour
    assert repeats(Stored(AGAIN, hours_ago=0, district=None, phone=CALLER)) == same_phone


@pytest.mark.parametrize(
    ("earlier", "new", "linked"),
    [
        (Stored(STREETLIGHT, 2, district=None, phone=CALLER), Stored(AGAIN, 0, None, CALLER), True),
        (
            Stored(STREETLIGHT, 2, district=None, phone="13800138000"),
            Stored(AGAIN, 0, None, "+86 138-0013-8000"),
            True,
        ),
        (
            Stored(STREETLIGHT, 2, district=None, phone="010-12345678"),
            Stored(AGAIN, 0, None, "+86 10 1234 5678"),
            True,
        ),
        (
            Stored(STREETLIGHT, 2, None, CALLER),
            Stored(f"{AGAIN}我的电话13800138000", 0, None, email="li.si@example.cn"),
            True,
        ),
        (
            Stored(f"{STREETLIGHT}联系电话：138 0013 8000", 2, None, email="li.si@example.cn"),
            Stored(AGAIN, 0, None, CALLER),
            True,
        ),
        (
            Stored(f"{STREETLIGHT}电话0831-2345678", 2, None),
            Stored(f"{AGAIN}座机+86 831 234 5678", 0, None),
            True,
        ),
        (
            Stored(f"{STREETLIGHT}电话13900139000", 2, None, "+8613700137000"),
            Stored(f"{AGAIN}电话13800138000", 0, None, CALLER),
            False,
        ),
        (
            Stored(STREETLIGHT, 2, None, email="Zhang.San@Example.cn"),
            Stored(AGAIN, 0, None, email="zhang.san@example.cn"),
            True,
        ),
        (Stored(STREETLIGHT, 2), Stored(AGAIN, 0, phone="+8613900139000"), True),
        (Stored(STREETLIGHT, 2, "南溪区"), Stored(AGAIN, 0, "翠屏区"), False),
        (Stored(STREETLIGHT, 2, None, CALLER), Stored(AGAIN, 0, None, "+8613900139000"), False),
        (Stored(STREETLIGHT, 2, phone=CALLER), Stored(AGAIN, 0, None, None), False),
        (Stored(STREETLIGHT, 7 * 24 + 1, phone=CALLER), Stored(AGAIN, 0, phone=CALLER), False),
        (Stored(STREETLIGHT, 2, status="received"), Stored(AGAIN, 0), False),
        (Stored(STREETLIGHT, 2, status="closed"), Stored(AGAIN, 0), False),
        (Stored(STREETLIGHT, 2, status="rejected"), Stored(AGAIN, 0), False),
        (Stored(STREETLIGHT, 2, status="replied"), Stored(AGAIN, 0), True),
        (Stored("南岸西路停车场收费标准不公开", 2), Stored(AGAIN, 0), False),
        (Stored("", 2, phone=CALLER), Stored("", 0, phone=CALLER), False),
    ],
    ids=[
        "same-phone",
        "same-phone-written-another-way",
        "same-landline-written-another-way",
        "sms-then-an-email-giving-its-number",
        "an-email-giving-a-number-then-an-sms-from-it",
        "both-giving-one-landline-written-two-ways",
        "other-numbers-given",
        "same-email-any-case",
        "same-district",
        "other-district",
        "other-phone-no-district",
        "no-citizen-no-district",
        "outside-the-window",
        "not-yet-routed",
        "closed",
        "rejected",
        "replied",
        "other-words",
        "no-words",
    ],
)
def test_what_a_new_letter_may_repeat(
    repeats: Routes, engine: Engine, earlier: Stored, new: Stored, linked: bool
) -> None:
    (first,) = store(engine, [earlier])
    assert repeats(new) == (first if linked else None)


def test_a_letter_linked_already_is_not_repeated_its_original_is(
    engine: Engine, repeats: Routes
) -> None:
    (original,) = store(engine, [Stored(STREETLIGHT, 3)])
    store(engine, [Stored(STREETLIGHT, 2, status="duplicate", duplicate_of=original)])
    assert repeats(Stored(AGAIN, 0)) == original


def test_a_repeat_by_phone_is_found_while_the_keys_rotate(
    engine: Engine, database_url: str
) -> None:
    """The earlier letter's phone was hashed under the old key, the new one's under the new:
    during a rotation a node holds both and looks under each (store/pii.py)."""
    (first,) = store(engine, [Stored(STREETLIGHT, 2, district=None, phone=CALLER)])
    rotating = make_engine(database_url, pii=BOTH)
    try:
        (again,) = store(rotating, [Stored(AGAIN, 0, None, "138 0013 8000", status="received")])
        with make_sessionmaker(rotating)() as session:
            hashes = session.scalars(select(Citizen.phone_hash).join(Letter)).all()
            assert len(set(hashes)) == 2  # one phone, hashed under each key
            letter = session.get(Letter, again)
            assert letter is not None
            original = find_duplicate(ROUTING, session, letter, NOW)
    finally:
        rotating.dispose()
    assert original is not None and original.id == first


def candidates(engine: Engine, new: Stored) -> dict[str, list[int]]:
    """The ids each kind of candidate query of a new letter returns, in its order."""
    (letter_id,) = store(engine, [new])
    with make_sessionmaker(engine)() as session:
        letter = session.get(Letter, letter_id)
        assert letter is not None
        since = NOW - timedelta(days=ROUTING.duplicate_window_days)
        return {
            kind: [row.id for row in session.execute(query)]
            for kind, query in duplicate_queries(session, letter, since).items()
        }


def test_only_the_newest_letters_in_hand_of_each_kind_are_compared(engine: Engine) -> None:
    many = CANDIDATES + 10
    mine = store(engine, [Stored(other_matter(n), 1 + n, None, CALLER) for n in range(many)])
    giving_it = store(
        engine, [Stored(f"{other_matter(n)}，电话{CALLER}", 1 + n, None) for n in range(many)]
    )
    about_here = store(engine, [Stored(other_matter(n), 1 + n) for n in range(many)])

    found = candidates(engine, Stored(AGAIN, 0, phone=CALLER, status="received"))

    assert found == {
        "citizen": mine[:CANDIDATES],
        "phone": giving_it[:CANDIDATES],
        "district": about_here[:CANDIDATES],
    }


# Each kind of sameness, a new letter that has only it, and the index that answers it.
KINDS = [
    (Stored(AGAIN, 0, None, CALLER, status="received"), "citizen", "ix_letters_citizen_received"),
    (
        Stored(f"{AGAIN}回电13800138000", 0, None, status="received"),
        "phone",
        "ix_letter_phones_hash_received",
    ),
    (Stored(AGAIN, 0, "屏山县", status="received"), "district", "ix_letters_district_received"),
]
# The city's districts (config.yaml) by their share of the letters: the town is most of it.
DISTRICTS = ["翠屏区"] * 12 + ["叙州区"] * 6 + ["南溪区"] * 3
DISTRICTS += ["江安县", "长宁县", "高县", "珙县", "筠连县", "兴文县", "屏山县"]


@pytest.mark.parametrize(
    ("new", "kind", "index"), KINDS, ids=["same-citizen", "same-phone-given", "same-district"]
)
def test_each_candidate_query_reads_its_index_not_the_table(
    engine: Engine, new: Stored, kind: str, index: str
) -> None:
    """On 3,000 letters of the last week from as many citizens, the new one about a county
    with a small share of them: SQLite as the gateway runs it (never analysed), PostgreSQL
    after the ANALYZE autovacuum would have run. (About the town, PostgreSQL may rather read
    the week's newest letters until it has enough of the town's: about as short a read.)"""
    store(
        engine,
        [
            Stored(
                f"{other_matter(n)}，联系电话1390{n:07d}",
                n / 20,
                DISTRICTS[n % len(DISTRICTS)],
                f"1380{n:07d}",
            )
            for n in range(3000)
        ],
    )
    sqlite = engine.dialect.name == "sqlite"
    if not sqlite:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE letters"))
            conn.execute(text("ANALYZE citizens"))
            conn.execute(text("ANALYZE letter_phones"))
    (letter_id,) = store(engine, [new])
    with make_sessionmaker(engine)() as session:
        letter = session.get(Letter, letter_id)
        assert letter is not None
        query = duplicate_queries(session, letter, NOW - timedelta(days=7))[kind]
        sql = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        plan = "\n".join(
            str(row[-1] if sqlite else row[0]) for row in session.execute(text(f"{explain}{sql}"))
        )

    assert index in plan, plan
    assert ("SCAN letters" not in plan) if sqlite else ("Seq Scan on letters" not in plan), plan
    if sqlite and index == "ix_letters_district_received":
        # Read newest first and stopped at the limit. (PostgreSQL does so on a bigger table,
        # benchmarks/routing.py; on this one it reads the county's week and sorts it.)
        assert "TEMP B-TREE" not in plan, plan


def test_the_phones_a_letter_gives_are_noted_as_hashes_once_it_is_judged(
    parts: Parts, engine: Engine
) -> None:
    """Noted when routing judges it (a voicemail's words are known by then), as keyed hashes
    under the current key: the numbers themselves are never stored for this."""
    words = "我的电话是138 0013 8000，单位座机0831-2345678，再说一遍13800138000。"
    parts.intake.accept_sync(make_contact(1, text=words))
    with make_sessionmaker(engine).begin() as session:
        letter = session.scalars(select(Letter)).one()
        assert session.scalars(select(LetterPhone)).all() == []  # not yet judged
        letter.status = "triage"

    with engine.connect() as conn:
        noted = conn.execute(text("SELECT * FROM letter_phones")).all()
    assert sorted((row.letter_id, row.phone_hash, row.key_id) for row in noted) == sorted(
        (letter.id, PII.lookup_hash("phone", number), "test")
        for number in ("+8613800138000", "+868312345678")
    )
    assert not any(digits in str(row) for row in noted for digits in ("13800138000", "2345678"))


@pytest.mark.parametrize("sms_first", [True, False], ids=["sms-first", "email-first"])
@pytest.mark.parametrize(
    ("given", "linked"),
    [
        ("我的电话13800138000", True),
        ("我的电话 138-0013-8000", True),
        ("我的电话13900139000", False),
    ],
    ids=["its-number", "its-number-written-another-way", "another-number"],
)
def test_an_sms_and_an_email_giving_its_number_are_linked_by_routing(
    core: Core,  # noqa: F811
    given: str,
    linked: bool,
    sms_first: bool,
) -> None:
    """Through intake and the routing core as they run: no district named, another sender;
    either may come first."""
    letters = [
        lambda: core.letter("小区门口的井盖丢了，晚上很危险，请尽快处理。"),
        lambda: core.letter(
            f"小区门口井盖丢了，晚上走路很危险，请尽快处理。{given}",
            channel=Channel.EMAIL,
            citizen=Sender(name="李四", email="li.si@example.cn"),
        ),
    ]
    first, second = (letter() for letter in (letters if sms_first else letters[::-1]))

    later = core.get(second)
    assert later.district is None and core.get(first).status in ("assigned", "triage")
    if linked:
        assert (later.status, later.duplicate_of_id) == ("duplicate", first)
    else:
        assert later.status != "duplicate" and later.duplicate_of_id is None
