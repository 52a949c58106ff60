"""A fuzz of the web form's bodies through the real site (issue 15): whatever a browser or a
script posts, it is a letter holding exactly what was typed and attached, or a 4xx page
saying in Chinese what to change, with what was typed kept; never a 500 nor an exception,
and the next good letter is still stored."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import Engine, func, select
from starlette.applications import Starlette
from starlette.routing import Mount

from channels.web.form import LIMITS
from channels.web.site import Site
from store.db import make_read_sessionmaker, make_sessionmaker
from store.models import Letter
from tests.channels.web.test_site import PDF, TEXT, png, receipt, site_config, token_of
from tests.conftest import Parts

MAX_TEXT = 5000
PROBLEM = re.compile(r'<p class="problem" role="alert">([^<]*)</p>')
NO_FILE = [("", b"")]  # a browser's part for a file input left empty
GOOD = {
    "category": "complaint",
    "subject": "路灯不亮",
    "text": TEXT,
    "district": "翠屏区",
    "address": "人民路12号",
    "name": "王小明",
    "phone": "13812345678",
    "email": "wang@example.cn",
    "publish": "yes",
}
FREE = ("subject", "text", "address", "name")  # any text within its limit is a letter
FORMAT = ("category", "district", "phone", "email", "publish")  # the rules decide


@dataclass
class Rig:
    client: httpx.AsyncClient
    engine: Engine
    runner: asyncio.Runner

    def form(self) -> str:
        page = self.runner.run(self.client.get("/"))
        assert page.status_code == 200
        return token_of(page.text)

    def post(self, **kwargs: Any) -> httpx.Response:
        return self.runner.run(self.client.post("/letters", **kwargs))

    def letter(self, number: str) -> Letter:
        with make_sessionmaker(self.engine)() as s:
            letter = s.scalars(select(Letter).where(Letter.tracking_number == number)).one()
            letter.citizen  # noqa: B018  # loaded while the session is open
            letter.attachments  # noqa: B018
            return letter

    def count(self) -> int:
        with make_sessionmaker(self.engine)() as s:
            return int(s.scalar(select(func.count(Letter.id))) or 0)


@pytest.fixture
def rig(engine: Engine, parts: Parts, tmp_path: Path) -> Iterator[Rig]:
    config = site_config(
        tmp_path, letters_per_ip_per_hour=1_000_000, letters_per_phone_per_day=1_000_000
    )
    site = Site(
        config,
        parts.intake.accept_or_refuse,
        make_read_sessionmaker(engine),
        lambda: datetime.now(UTC),
    )
    app = Starlette(routes=[Mount("/", routes=site.routes())])
    # raise_app_exceptions (httpx's default): an uncaught exception fails the example.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    with asyncio.Runner() as runner:
        client = httpx.AsyncClient(transport=transport, base_url="http://hotline.test")
        try:
            yield Rig(client, engine, runner)
        finally:
            runner.run(client.aclose())


def expected(fields: dict[str, str]) -> dict[str, str]:
    """The form's values as a letter keeps them: trimmed, the phone without separators."""
    values = {name: fields.get(name, "").strip() for name in GOOD}
    values["phone"] = re.sub(r"[\s\-()]", "", values["phone"])
    return values


def assert_stored(
    rig: Rig, page: httpx.Response, fields: dict[str, str], files: list[bytes]
) -> None:
    number, code = receipt(page.text)
    letter = rig.letter(number)
    v = expected(fields)
    shown = {k: value.replace("\x00", "\ufffd") for k, value in v.items()}  # as intake keeps
    assert letter.verification_code == code and letter.channel == "web"
    assert letter.text == shown["text"]
    assert letter.subject == (shown["subject"] or shown["text"][:30])
    assert (letter.category, letter.district) == (v["category"], shown["district"] or None)
    assert letter.citizen is not None
    citizen = letter.citizen
    assert (citizen.name, citizen.phone, citizen.email, citizen.address) == tuple(
        v[name] or None for name in ("name", "phone", "email", "address")
    )
    assert letter.publish_consent is (fields.get("publish") == "yes")
    sent = [hashlib.sha256(data).hexdigest() for data in files]
    assert [a.sha256 for a in sorted(letter.attachments, key=lambda a: a.id)] == sent


def assert_refused(page: httpx.Response, fields: dict[str, str]) -> None:
    assert 400 <= page.status_code < 500, (page.status_code, page.text[:500])
    problem = PROBLEM.search(page.text)
    assert problem and re.search(r"[\u4e00-\u9fff]", problem.group(1)), page.text[:500]
    typed = expected(fields)["text"]
    if typed and len(typed) <= MAX_TEXT:
        assert str(escape(typed)) in page.text  # the textarea still holds it


def assert_still_serving(rig: Rig) -> None:
    before = rig.count()
    fields = {**GOOD, "token": rig.form(), "text": "井盖丢了，请尽快处理。"}
    page = rig.post(data=fields, files=NO_FILE)
    assert page.status_code == 200, page.text[:500]
    assert_stored(rig, page, fields, [])
    assert rig.count() == before + 1


# -- the fuzzed form -----------------------------------------------------------------------

# Any character but a lone surrogate, and often one that means something to a form's
# encoding, to HTML or to a database.
CHARS = st.one_of(
    st.characters(codec="utf-8"), st.sampled_from(list(" +%&=;\"'<>\\\r\n\t\x00\u3000\ufeff坏。"))
)
ANY = st.text(CHARS, max_size=120)
LONGER = st.text(CHARS, max_size=320)
FILES = st.sampled_from(["png", "pdf", "junk", "empty", "cut-pdf"])
KNOWN = {*GOOD, "token", "homepage", "attachments"}


@st.composite
def forms(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.sampled_from([*FREE, *FORMAT, "files", "extra"]))
    changes: dict[str, Any] = {"text": draw(LONGER)}
    changes[chosen] = draw(st.lists(FILES, max_size=6) if chosen == "files" else ANY)
    if chosen == "extra":
        name = st.text(min_size=1, max_size=10).filter(lambda n: n not in KNOWN)
        changes["extra"] = draw(st.dictionaries(name, ANY, min_size=1, max_size=5))
    changes["urlencoded"] = chosen != "files" and draw(st.booleans())
    return changes


def file_bytes(kind: str) -> bytes:
    return {
        "png": png(),
        "pdf": PDF,
        "junk": b"MZ\x90\x00" + bytes(random.Random(len(kind)).randbytes(64)),
        "empty": b"",
        "cut-pdf": PDF[:20],
    }[kind]


def should_store(changes: dict[str, Any], fields: dict[str, str]) -> bool | None:
    """True when the form must be a letter, False when it must be refused, None when the
    rules decide (a phone, an e-mail, a district or a category fuzzed)."""
    v = expected(fields)
    limits = {**LIMITS, "text": MAX_TEXT}
    files = changes.get("files", [])
    if not v["text"] or any(len(v[name]) > most for name, most in limits.items()):
        return False
    if len(files) > 5 or set(files) - {"png", "pdf"}:
        return False
    return None if set(changes) & set(FORMAT) else True


FUZZ = settings(
    max_examples=80,
    deadline=5000,  # ms for one form and its checks; a few dozen is usual
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_any_form_is_a_letter_of_exactly_what_was_typed_or_a_4xx_that_keeps_it(
    rig: Rig,
) -> None:
    @FUZZ
    @given(forms())
    def one(changes: dict[str, Any]) -> None:
        fields = {**GOOD, "token": rig.form()}
        fields |= {k: v for k, v in changes.items() if k in GOOD}
        fields |= changes.get("extra", {})
        files = [file_bytes(kind) for kind in changes.get("files", [])]
        uploads = [("attachments", (f"附件{n}.bin", data)) for n, data in enumerate(files)]
        note(f"fields={fields!r} files={changes.get('files')!r}")
        before = rig.count()
        if changes["urlencoded"]:
            page = rig.post(data=fields)
            assert page.request.headers["content-type"] == "application/x-www-form-urlencoded"
        else:
            page = rig.post(data=fields, files=uploads or NO_FILE)
        verdict = should_store(changes, fields)
        if page.status_code == 200:
            assert verdict is not False, page.text[:500]
            assert_stored(rig, page, fields, files)
        else:
            assert verdict is not True, page.text[:2000]
            assert_refused(page, fields)
            assert rig.count() == before
        assert_still_serving(rig)

    one()


# -- bodies no browser would send ----------------------------------------------------------

CONTENT_TYPES = st.sampled_from(
    [
        None,  # the body's own
        "multipart/form-data",  # no boundary
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=x",
        "MULTIPART/FORM-DATA; boundary={boundary}",
        "application/x-www-form-urlencoded; charset=gbk",
        "text/plain",
        "application/json",
    ]
)


@st.composite
def mangled(draw: st.DrawFn) -> tuple[bytes, int, str, bytes]:
    """How to spoil a good body: what to put in, how much to drop there, the content type
    to claim, and which kind of body to start from."""
    drop = draw(st.integers(0, 64))
    content_type = draw(CONTENT_TYPES) or ""
    insert = draw(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from(
                [b"\r\n", b"--", b"\r\n\r\n", b"%", b"%E5%9D", b"&", b"=", b"\xff\xfe"]
            ),
        )
    )
    return insert, drop, content_type, draw(st.sampled_from([b"multipart", b"urlencoded"]))


def test_a_mangled_body_is_a_4xx_page_or_a_letter_never_a_500(rig: Rig) -> None:
    @FUZZ
    @given(mangled(), st.integers(0, 10_000))
    def one(mangling: tuple[bytes, int, str, bytes], at: int) -> None:
        insert, drop, content_type, kind = mangling
        fields = {**GOOD, "token": rig.form()}
        uploads = [("attachments", ("现场.png", png()))] if kind == b"multipart" else None
        request = rig.client.build_request("POST", "/letters", data=fields, files=uploads)
        body = request.read()
        at %= len(body) + 1
        body = body[:at] + insert + body[at + drop :]
        headers = dict(request.headers)
        boundary = headers["content-type"].partition("boundary=")[2]
        if content_type:
            headers["content-type"] = content_type.format(boundary=boundary)
        headers["content-length"] = str(len(body))
        note(f"headers={headers!r} body={body!r}")
        page = rig.runner.run(rig.client.post("/letters", content=body, headers=headers))
        if page.status_code == 200:
            number, _ = receipt(page.text)
            assert rig.letter(number).channel == "web"
        else:
            assert 400 <= page.status_code < 500, (page.status_code, page.text[:500])
            problem = PROBLEM.search(page.text)
            assert problem and re.search(r"[\u4e00-\u9fff]", problem.group(1)), page.text[:500]
        assert_still_serving(rig)

    one()


# -- the inputs of issue 15 for the web form, and what the fuzz found ----------------------

FORM_CASES = [
    # (changes to a good form, urlencoded?, the status, what the page or the letter has)
    pytest.param({"text": "路灯\x00坏了"}, False, 200, "路灯\ufffd坏了", id="nul-multipart"),
    pytest.param({"text": "路灯\x00坏了"}, True, 200, "路灯\ufffd坏了", id="nul-urlencoded"),
    pytest.param({"text": "a+b %2B 100% & = 坏"}, True, 200, "a+b %2B 100% & = 坏", id="escapes"),
    pytest.param({"token": "1.nonce.签名"}, True, 400, "表单无效", id="found-token-not-ascii"),
    pytest.param({"token": "1.ＡＢ.ＣＤ"}, False, 400, "表单无效", id="token-fullwidth"),
    pytest.param({f"f{n}": "x" for n in range(41)}, True, 400, "提交内容无法识别", id="41-fields"),
    pytest.param({"名" * 70_000: "x"}, True, 400, "提交内容无法识别", id="name-past-64kb"),
]


@pytest.mark.parametrize(("changes", "urlencoded", "status", "said"), FORM_CASES)
def test_a_form_of_issue_15_gets_its_answer(
    rig: Rig, changes: dict[str, str], urlencoded: bool, status: int, said: str
) -> None:
    fields = {**GOOD, "token": rig.form(), **changes}
    page = rig.post(data=fields) if urlencoded else rig.post(data=fields, files=NO_FILE)
    assert page.status_code == status, page.text[:500]
    if status == 200:
        assert_stored(rig, page, fields, [])
        assert rig.letter(receipt(page.text)[0]).text == said
    else:
        problem = PROBLEM.search(page.text)
        assert problem and said in problem.group(1)
        assert rig.count() == 0
    assert_still_serving(rig)


BODIES = [
    # (a body as some client sent it, its content type, the status, the text stored or shown)
    pytest.param(b"text=%FF%FE", "urlencoded", 400, "\ufffd\ufffd", id="not-utf8-escaped"),
    pytest.param("text=坏".encode("gbk"), "urlencoded", 400, "\ufffd", id="raw-gbk-bytes"),
    pytest.param(
        b'--x\r\nContent-Disposition: form-data; name="te',
        "multipart",
        400,
        "表单无效",
        id="multipart-cut",
    ),
    pytest.param(b"text=a", "multipart/form-data", 400, "提交内容无法识别", id="no-boundary"),
]


@pytest.mark.parametrize(("body", "kind", "status", "said"), BODIES)
def test_a_body_no_browser_sends_gets_a_page_that_says_so(
    rig: Rig, body: bytes, kind: str, status: int, said: str
) -> None:
    rig.form()  # the cookie; the token is missing from these bodies
    content_type = {
        "urlencoded": "application/x-www-form-urlencoded",
        "multipart": "multipart/form-data; boundary=x",
    }.get(kind, kind)
    page = rig.runner.run(
        rig.client.post("/letters", content=body, headers={"content-type": content_type})
    )
    assert page.status_code == status, page.text[:500]
    assert said in page.text
    assert_still_serving(rig)
