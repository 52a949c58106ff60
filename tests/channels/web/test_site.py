"""The citizen's web site over real HTTP requests (ASGI), with real forms, cookies and files."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.routing import Mount

from channels.web.site import Site
from gateway.contract.config import Config, DeadlinesConfig, WebConfig
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from store.db import make_read_sessionmaker, make_sessionmaker
from store.models import Letter
from tests.conftest import SHANGHAI, Parts, build_intake, count_rows
from tests.gateway.test_workflow import CITY_ADMIN, MONDAY, OPERATOR_ZHANG, ROUTING
from tests.support.tcp_proxy import TcpProxy

TEXT = (
    "翠屏区人民路12号门口的路灯坏了三天，晚上很黑。我的电话13812345678，身份证510102199001011234。"
)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass
class Web:
    client: httpx.AsyncClient
    engine: Engine
    tmp: Path

    async def form(self) -> str:
        page = await self.client.get("/")
        assert page.status_code == 200
        return token_of(page.text)

    async def submit(
        self, token: str | None = None, files: list[tuple[str, bytes]] | None = None, **fields: str
    ) -> httpx.Response:
        data = {
            "token": token or await self.form(),
            "category": "complaint",
            "subject": "路灯不亮",
            "text": TEXT,
            "district": "翠屏区",
            "name": "王小明",
            "phone": "13812345678",
            "publish": "yes",
            **fields,
        }
        uploads = [("attachments", (name, body)) for name, body in files or []]
        return await self.client.post("/letters", data=data, files=uploads or None)


def token_of(html: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def receipt(html: str) -> tuple[str, str]:
    number = re.search(r'id="tracking-number">(\w+)<', html)
    code = re.search(r'id="verification-code">(\d+)<', html)
    assert number and code, html
    return number.group(1), code.group(1)


def site_config(tmp: Path, **web: Any) -> Config:
    settings = {"min_fill_seconds": 0, "secret": "test-secret", **web}
    return Config(
        routing=ROUTING,
        channels={"web": WebConfig(**settings)},  # type: ignore[arg-type]
    )


async def serve(engine: Engine, parts: Parts, tmp: Path, **web: Any) -> AsyncIterator[Web]:
    site = Site(
        site_config(tmp, **web),
        parts.intake.accept_or_refuse,
        make_read_sessionmaker(engine),
        lambda: datetime.now(UTC),
    )
    app = Starlette(routes=[Mount("/", routes=site.routes())])
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hotline.test") as client:
        yield Web(client, engine, tmp)


@pytest.fixture
async def web(engine: Engine, parts: Parts, tmp_path: Path) -> AsyncIterator[Web]:
    async for w in serve(engine, parts, tmp_path):
        yield w


async def test_a_letter_with_a_photo_is_stored_and_the_citizen_gets_number_and_code(
    web: Web,
) -> None:
    page = await web.submit(files=[("现场.jpg", png())])
    assert page.status_code == 200, page.text
    number, code = receipt(page.text)
    with make_sessionmaker(web.engine)() as s:
        letter = s.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        assert (letter.channel, letter.category, letter.district) == ("web", "complaint", "翠屏区")
        assert letter.verification_code == code and letter.publish_consent is True
        assert letter.citizen is not None and letter.citizen.phone == "13812345678"
        assert letter.citizen.ip == "203.0.113.9"
        # Named by what the bytes are, not by what the citizen called the file.
        assert [(a.filename, a.media_type) for a in letter.attachments] == [
            ("现场.png", "image/png")
        ]
    assert page.headers["cache-control"] == "no-store"


async def test_the_same_form_sent_twice_is_one_letter_shown_again(web: Web) -> None:
    token = await web.form()
    first = await web.submit(token)
    second = await web.submit(token)
    assert receipt(first.text) == receipt(second.text)
    assert "已提交过" in second.text
    assert count_rows(web.engine, Letter) == 1


async def test_two_forms_open_in_two_tabs_are_two_letters(web: Web) -> None:
    tab1, tab2 = await web.form(), await web.form()
    assert receipt((await web.submit(tab1)).text) != receipt(
        (await web.submit(tab2, text="另一件事")).text
    )
    assert count_rows(web.engine, Letter) == 2


async def test_mistakes_are_named_in_chinese_and_what_was_typed_is_kept(web: Web) -> None:
    page = await web.submit(category="", phone="12345", email="not-an-address")
    assert page.status_code == 400
    assert "请选择诉求类别" in page.text and "请填写正确的手机号码" in page.text
    assert "请填写正确的电子邮箱地址" in page.text
    assert "翠屏区人民路12号门口的路灯坏了三天" in page.text  # the textarea still holds it
    assert count_rows(web.engine, Letter) == 0


async def test_a_report_needs_a_real_name_and_phone(web: Web) -> None:
    page = await web.submit(category="report", name="", phone="")
    assert page.status_code == 400
    assert "举报须提供真实姓名" in page.text and "举报须提供联系电话" in page.text


async def test_files_are_judged_by_their_bytes(web: Web) -> None:
    program = b"MZ\x90\x00" + b"\x00" * 200
    page = await web.submit(files=[("照片.jpg", program)])
    assert (
        page.status_code == 400 and "照片.jpg" in page.text and "不是可接受的图片或PDF" in page.text
    )
    cut_pdf = await web.submit(files=[("报告.pdf", PDF[:20])])
    assert cut_pdf.status_code == 400
    assert count_rows(web.engine, Letter) == 0
    page = await web.submit(files=[("scan", PDF)])
    number, _ = receipt(page.text)
    with make_sessionmaker(web.engine)() as s:
        letter = s.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        assert [(a.filename, a.media_type) for a in letter.attachments] == [
            ("scan.pdf", "application/pdf")
        ]


async def test_too_many_or_too_large_files_are_refused(
    engine: Engine, parts: Parts, tmp_path: Path
) -> None:
    async for web in serve(engine, parts, tmp_path, max_attachments=2, max_attachment_bytes=2048):
        many = await web.submit(files=[(f"{n}.png", png()) for n in range(3)])
        assert many.status_code == 400 and "附件最多 2 个" in many.text and TEXT[:10] in many.text
        big = png() + b"\x00" * 3000
        large = await web.submit(files=[("大.png", big)])
        assert large.status_code == 400 and "“大.png”超过 2 KB" in large.text
        # Past every file at its limit plus the text: refused before it is read.
        huge = await web.submit(files=[("巨.png", png() + bytes(1100 * 1024))])
        assert huge.status_code == 413 and "超出限制" in huge.text
    assert count_rows(engine, Letter) == 0


async def test_bots_are_turned_away_by_the_honeypot_and_the_fill_time(
    engine: Engine, parts: Parts, tmp_path: Path
) -> None:
    async for web in serve(engine, parts, tmp_path, min_fill_seconds=30):
        too_fast = await web.submit()
        assert too_fast.status_code == 400 and "提交过快" in too_fast.text
        assert TEXT[:10] in too_fast.text
    async for web in serve(engine, parts, tmp_path):
        trapped = await web.submit(homepage="http://spam.example")
        assert trapped.status_code == 400
    assert count_rows(engine, Letter) == 0


async def test_a_post_from_another_site_without_our_cookie_or_token_is_refused(web: Web) -> None:
    token = await web.form()
    web.client.cookies.clear()
    no_cookie = await web.submit(token)
    assert no_cookie.status_code == 400 and "Cookie" in no_cookie.text
    await web.form()  # a new cookie: the old token was signed for another browser
    other_browser = await web.submit(token)
    assert other_browser.status_code == 400
    forged = await web.submit(token.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAA")
    assert forged.status_code == 400
    assert count_rows(web.engine, Letter) == 0


async def test_per_address_and_per_phone_limits_keep_the_text(
    engine: Engine, parts: Parts, tmp_path: Path
) -> None:
    async for web in serve(
        engine, parts, tmp_path, letters_per_ip_per_hour=2, letters_per_phone_per_day=1
    ):
        assert (await web.submit()).status_code == 200
        second = await web.submit(text="同一个电话的第二封信")
        assert second.status_code == 429 and "同一个电话的第二封信" in second.text
        assert (await web.submit(phone="13900001111")).status_code == 200
        third = await web.submit(phone="13900002222")
        assert third.status_code == 429 and "提交过于频繁" in third.text
    assert count_rows(engine, Letter) == 2


async def test_tracking_shows_only_ones_own_letter_and_stops_guessing(
    engine: Engine, parts: Parts, tmp_path: Path
) -> None:
    async for web in serve(engine, parts, tmp_path, lookups_failed_per_ip_per_hour=3):
        number, code = receipt((await web.submit()).text)
        lookup = await web.client.get("/track")
        token = token_of(lookup.text)
        found = await web.client.post(
            "/track", data={"token": token, "number": number, "code": code}
        )
        assert found.status_code == 200 and "已收件" in found.text and "来信已收到" in found.text
        assert "13812345678" not in found.text
        wrong = await web.client.post(
            "/track", data={"token": token, "number": number, "code": "000000"}
        )
        unknown = await web.client.post(
            "/track", data={"token": token, "number": "202611260000019", "code": code}
        )
        assert wrong.status_code == unknown.status_code == 404
        assert "未查到该来信" in wrong.text and "路灯" not in wrong.text
        await web.client.post("/track", data={"token": token, "number": number, "code": "1"})
        blocked = await web.client.post(
            "/track", data={"token": token, "number": number, "code": code}
        )
        assert blocked.status_code == 429


async def test_the_reply_reaches_the_tracking_page_and_a_published_letter_has_no_pii(
    web: Web,
) -> None:
    number, code = receipt((await web.submit()).text)
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: MONDAY)
    sessions = make_sessionmaker(web.engine)
    with sessions.begin() as s:
        workflow.sync_departments(s)
        letter = s.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        letter.status = "triage"
        workflow.assign(s, letter, ["city-admin"], "assign", "time_limited", OPERATOR_ZHANG)
        workflow.sign(s, letter, CITY_ADMIN)
        workflow.reply(
            s, letter, "已修复。王小明先生如有问题请拨13812345678。", CITY_ADMIN, public=True
        )
    token = token_of((await web.client.get("/track")).text)
    page = await web.client.post("/track", data={"token": token, "number": number, "code": code})
    assert "已答复" in page.text and "市城市管理局 已签收" in page.text and "已修复" in page.text

    listing = await web.client.get("/published")
    assert number in listing.text
    one = await web.client.get(f"/published/{number}")
    assert one.status_code == 200 and "已修复" in one.text
    for secret in ("13812345678", "510102199001011234", "王小明"):
        assert secret not in listing.text and secret not in one.text


async def test_a_letter_is_not_published_without_the_citizens_consent(web: Web) -> None:
    number, _ = receipt((await web.submit(publish="")).text)
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: MONDAY)
    with make_sessionmaker(web.engine).begin() as s:
        workflow.sync_departments(s)
        letter = s.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        letter.status = "triage"
        workflow.answer(s, letter, "已解答。", OPERATOR_ZHANG, public=True)
    assert number not in (await web.client.get("/published")).text
    assert (await web.client.get(f"/published/{number}")).status_code == 404


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_with_the_database_down_the_citizen_is_asked_to_resend_and_keeps_the_text(
    database_url: str, engine: Engine, cut_engine: Engine, proxy: TcpProxy, tmp_path: Path
) -> None:
    async for web in serve(cut_engine, build_intake(cut_engine, tmp_path), tmp_path):
        token = await web.form()
        proxy.down()
        refused = await web.submit(token)
        assert refused.status_code == 503 and TEXT[:10] in refused.text
        proxy.up()
        # The kept form carries the same key: sending it now is the one letter.
        stored = await web.submit(token_of(refused.text))
        assert stored.status_code == 200
        assert receipt((await web.submit(token_of(refused.text))).text) == receipt(stored.text)
    assert count_rows(engine, Letter) == 1


# A browser posts this form as multipart/form-data (its enctype), with an empty file part
# when no file is chosen.
NO_FILE = [("", b"")]
LONG = "人民路的路灯坏了很久" * 2500  # 75 KB in UTF-8, 25,000 characters


@pytest.mark.parametrize(
    ("web_settings", "field", "typed", "said"),
    [
        pytest.param({}, "text", LONG, "诉求内容请不要超过 5000 字", id="text-over-64kb"),
        pytest.param({}, "text", "坏" * 5001, "诉求内容请不要超过 5000 字", id="text-over-5000"),
        pytest.param({}, "address", LONG, "详细地址请不要超过 200 字", id="address-over-64kb"),
        pytest.param({}, "subject", "灯" * 101, "标题请不要超过 100 字", id="subject-over-100"),
        pytest.param(
            {"max_field_bytes": 4096, "max_text_chars": 1000},
            "text",
            "坏" * 2000,
            "诉求内容请不要超过 1000 字",
            id="limits-from-config",
        ),
    ],
)
# A script or tool may post the form urlencoded (no enctype): told the same, kept the same.
@pytest.mark.parametrize("files", [NO_FILE, None], ids=["multipart", "urlencoded"])
async def test_a_field_too_long_is_named_with_its_limit_and_what_was_typed_is_kept(
    engine: Engine,
    parts: Parts,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    web_settings: dict[str, Any],
    field: str,
    typed: str,
    said: str,
    files: list[tuple[str, bytes]] | None,
) -> None:
    async for web in serve(engine, parts, tmp_path, **web_settings):
        with caplog.at_level(logging.INFO):
            page = await web.submit(files=files, **{field: typed})
        sent = page.request.headers["content-type"]
        assert sent.startswith("multipart/" if files else "application/x-www-form-urlencoded")
        assert page.status_code == 400
        assert said in page.text and "提交内容无法识别" not in page.text
        assert typed[:200] in page.text  # the start, at least, of what was typed
        bound = web_settings.get("max_field_bytes", 64 * 1024)
        assert ("过长的部分未能保留" in page.text) == (len(typed.encode()) > bound)
        assert "王小明" in page.text and "13812345678" in page.text  # the other fields too
        [logged] = [
            getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "web.too_long"
        ]
        assert logged["field"] == field
    assert count_rows(engine, Letter) == 0


async def test_a_browsers_multipart_form_within_the_limits_is_a_letter(web: Web) -> None:
    page = await web.submit(files=NO_FILE, text="坏" * 5000)
    assert page.status_code == 200, page.text
    receipt(page.text)


@pytest.mark.parametrize(
    ("public_url", "action"),
    [
        pytest.param("", "/letters", id="unset-paths-only"),
        pytest.param(
            "https://12345.city.example/xinfang/",
            "https://12345.city.example/xinfang/letters",
            id="configured",
        ),
    ],
)
async def test_links_come_from_the_configured_address_never_the_host_header(
    engine: Engine, parts: Parts, tmp_path: Path, public_url: str, action: str
) -> None:
    async for web in serve(engine, parts, tmp_path, public_url=public_url):
        page = await web.client.get("/", headers={"Host": "evil.example"})
        assert page.status_code == 200
        assert f'action="{action}"' in page.text
        assert "evil.example" not in page.text
        assert "hotline.test" not in page.text  # nor the Host of an honest request
