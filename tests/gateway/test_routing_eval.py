"""Classification and routing measured on the labelled letters (tests/letters), and the
rules the measure rests on: Traditional script, weighted keywords, the citizen's choice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opencc import OpenCC
from pydantic import ValidationError
from sqlalchemy import Engine, select

from gateway.cli import main
from gateway.contract.config import CATEGORIES, RoutingConfig, load_config
from gateway.contract.contact import Citizen
from gateway.core.deadlines import WorkCalendar
from gateway.core.routing import Rules
from gateway.core.workflow import Workflow
from gateway.routing_cli import load_samples
from store.db import make_sessionmaker
from store.models import Event, Letter
from tests.conftest import SHANGHAI, Parts, make_contact

ROOT = Path(__file__).resolve().parents[2]
LETTERS = ROOT / "tests" / "letters"
CONFIG = ROOT / "config.yaml"


@pytest.fixture(scope="module")
def rules() -> Rules:
    return Rules(load_config(CONFIG).routing)


def evaluate(directory: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> object:
    code = main(["routing", "eval", str(directory), "--config", str(CONFIG), *extra])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out) if "--json" in extra else out


def test_the_labelled_letters_cover_every_category_department_channel_and_script() -> None:
    samples = load_samples(LETTERS)
    departments = {d.code for d in load_config(CONFIG).routing.departments}

    assert len(samples) >= 300
    assert {s.category for s in samples} == set(CATEGORIES)
    assert {s.department for s in samples} == departments | {None}
    assert {s.channel for s in samples} == {"phone", "sms", "email", "fax", "web"}
    assert {s.text_source for s in samples} == {None, "transcription", "ocr"}
    lengths = [len(s.text or s.transcript or "") for s in samples]
    assert min(lengths) <= 15 and max(lengths) >= 900
    assert sum(1 for s in samples if s.chosen) >= 15
    written = [s.text or s.transcript or "" for s in samples]
    assert sum(1 for w in written if OpenCC("t2s").convert(w) != w) >= 25  # Traditional


def test_the_shipped_rules_classify_and_route_nine_letters_in_ten(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = evaluate(LETTERS, capsys, "--json")

    assert isinstance(report, dict)
    assert report["letters"] == len(load_samples(LETTERS))
    assert report["category_accuracy"] >= 0.90, report["misclassified"]
    assert report["department_accuracy"] >= 0.90, report["misclassified"]
    wrong = report["letters"] - min(report["category_correct"], report["department_correct"])
    assert len(report["misclassified"]) >= wrong


def test_the_eval_names_each_misclassified_letter_and_the_totals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text(
        "- {id: lamp, channel: sms, text: 投诉翠屏区路灯坏了, category: complaint,"
        " department: city-admin}\n"
        "- {id: hope, channel: sms, text: 希望早点回复, category: suggestion, department: null}\n",
        encoding="utf-8",
    )
    (tmp_path / "b.jsonl").write_text(
        '{"id": "ivr", "channel": "phone", "read_by": "transcription", "chosen": "help",'
        ' "text": "我要投诉楼下烧烤噪音", "category": "help", "department": "environment"}\n',
        encoding="utf-8",
    )
    (tmp_path / "notes.txt").write_text("not letters", encoding="utf-8")

    assert evaluate(tmp_path, capsys) == (
        "hope: category suggestion -> None, department None -> None\n"
        "3 letters: category 66.7% (2/3), department 100.0% (3/3)\n"
    )
    assert evaluate(tmp_path, capsys, "--json") == {
        "letters": 3,
        "category_correct": 2,
        "category_accuracy": 0.6667,
        "department_correct": 3,
        "department_accuracy": 1.0,
        "misclassified": [
            {
                "id": "hope",
                "expected": {"category": "suggestion", "department": None},
                "got": {"category": None, "department": None},
            }
        ],
    }


@pytest.mark.parametrize(
    ("files", "code", "message"),
    [
        ({}, 1, "no letters"),
        (
            {"a.yaml": "- {id: x, channel: sms, text: 路灯, category: gossip, department: null}"},
            2,
            "x: category 'gossip' is not one of",
        ),
        (
            {"a.yaml": "- {id: x, channel: sms, text: 路灯, category: other}"},
            2,
            "x: department missing",
        ),
        (
            {"a.yaml": "- {id: x, channel: pigeon, text: 路灯, category: other, department: null}"},
            2,
            "x: channel 'pigeon'",
        ),
        ({"a.yaml": "id: x"}, 2, "a list of letters expected"),
        ({"a.yaml": "- [unclosed"}, 2, "a.yaml: line 1: not YAML"),
        ({"a.jsonl": '{"id": "x"}\n\n{"id": '}, 2, "a.jsonl: line 3: not JSON"),
    ],
    ids=[
        "empty",
        "unknown-category",
        "no-department",
        "unknown-channel",
        "not-a-list",
        "bad-yaml",
        "bad-json",
    ],
)
def test_a_set_that_cannot_be_read_is_one_line_and_an_exit_code(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    code: int,
    message: str,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")

    assert main(["routing", "eval", str(tmp_path), "--config", str(CONFIG)]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_missing_directory_is_not_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["routing", "eval", str(tmp_path / "nowhere")]) == 1
    assert "nowhere: No such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "category", "department", "district"),
    [
        ("我要投訴翠屏區人民路的路燈壞了三天", "complaint", "city-admin", "翠屏区"),
        ("請問住房公積金怎麼提取", "inquiry", "housing", None),
        ("檢舉南溪區一家工廠夜間偷排廢水", "report", "environment", "南溪区"),
        ("感謝勞動監察大隊幫我們討回了工資", "other", "labour", None),
    ],
    ids=["complaint", "inquiry", "report", "thanks"],
)
def test_traditional_letters_are_read_in_simplified_characters(
    rules: Rules, text: str, category: str, department: str, district: str | None
) -> None:
    found = rules.district(text)
    decision = rules.route(rules.classify(rules.words(text)), text, found)

    assert (rules.classify(rules.words(text)), found) == (category, district)
    assert decision is not None and decision.department == department


def test_a_faxs_ocr_spaces_do_not_hide_its_words(rules: Rules) -> None:
    text = "投 诉 书 ： 南溪区 某 厂 排 污 ， 请 查 处"
    assert rules.classify(rules.words(text)) == "complaint"
    decision = rules.route("complaint", text, rules.district(text))
    assert decision is not None and decision.department == "environment"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("希望你们早点回复我", None),
        ("希望12345能够尽快处理，谢谢", None),
        ("希望在江北公园增设一个公共厕所", "suggestion"),
        ("建议江北公园多修一个公共厕所", "suggestion"),
        ("楼下烧烤店噪音扰民，我要投诉，希望尽快处理", "complaint"),
    ],
    ids=["hope-alone", "hope-and-thanks", "hope-and-add", "suggest", "complaint-with-hope"],
)
def test_a_weak_word_alone_gives_no_category(rules: Rules, text: str, category: str | None) -> None:
    assert rules.classify(rules.words(text)) == category


def test_keywords_are_plain_or_weighed_and_a_weight_must_be_above_zero() -> None:
    config = RoutingConfig.model_validate(
        {"category_keywords": {"suggestion": ["建议", {"希望": 0.5}], "help": {"求助": 2}}}
    )
    assert config.category_keywords == {
        "suggestion": {"建议": 1.0, "希望": 0.5},
        "help": {"求助": 2.0},
    }
    with pytest.raises(ValidationError, match=r"category_keywords.suggestion: '希望'"):
        RoutingConfig.model_validate({"category_keywords": {"suggestion": [{"希望": 0}]}})


def test_on_a_tie_the_category_named_first_wins() -> None:
    rules = Rules(RoutingConfig(category_keywords={"help": ["帮助"], "other": ["表扬"]}))
    assert rules.classify(rules.words("表扬公交司机帮助突发疾病的乘客")) == "other"
    assert rules.classify(rules.words("请帮助我们，顺便表扬一下社区")) == "help"


def test_the_category_the_citizen_chose_is_kept(parts: Parts, engine: Engine) -> None:
    routing = load_config(CONFIG).routing
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    workflow = Workflow(routing, load_config(CONFIG).deadlines, WorkCalendar(SHANGHAI), lambda: now)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        workflow.sync_departments(session)
    # The IVR key 2 (求助) or the web form's choice kept over the words; another citizen's
    # letter with no choice classified by its words.
    chosen = make_contact(
        1, text="我要投诉翠屏区人民路的路灯坏了三天", subject="", received_at=now, category="help"
    )
    unchosen = make_contact(
        2,
        text="投诉南溪区长江大道的井盖丢了，太危险",
        subject="",
        received_at=now,
        citizen=Citizen(name="李四", phone="+8613900139000"),
    )

    found = {}
    for contact in (chosen, unchosen):
        number = parts.intake.accept_sync(contact).tracking_number
        with sessions.begin() as session:
            letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
            workflow.process(session, letter)
            kinds = session.scalars(
                select(Event.kind).where(Event.letter_id == letter.id).order_by(Event.id)
            ).all()
            found[contact.category] = (letter.category, letter.status, "classified" in kinds)

    assert found == {
        "help": ("help", "assigned", False),
        None: ("complaint", "assigned", True),
    }
