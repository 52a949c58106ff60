"""The citizen's site in a real browser against a running gateway: write a letter with a
photo, read the number and code, look it up, and see that a wrong code shows nothing."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from gateway.contract.config import DeadlinesConfig
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from store.db import make_engine, make_sessionmaker
from store.models import Letter
from tests.conftest import PII, SHANGHAI
from tests.gateway.test_workflow import CITY_ADMIN, MONDAY, OPERATOR_ZHANG, ROUTING
from tests.support.axe import severe_violations
from tests.support.browser import chromium, phone_page, screenshot
from tests.support.processes import free_port, gateway


def write_config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"http:\n  port: {port}\n"
        "channels:\n  smtp:\n    enabled: false\n  gsm:\n    enabled: false\n"
        "  sip:\n    enabled: false\n"
        "  web:\n    min_fill_seconds: 1\n"
        "stt:\n  workers: 0\n"
        "routing:\n  enabled: false\n  districts: [翠屏区, 南溪区]\n",
        encoding="utf-8",
    )
    return config


def test_a_citizen_writes_tracks_and_reads_the_reply_in_a_browser(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    photo = tmp_path / "路灯.jpg"
    Image.new("RGB", (320, 240), (30, 30, 90)).save(photo, "JPEG")
    base = f"http://127.0.0.1:{port}"
    with gateway(config), chromium() as browser:
        page = phone_page(browser)
        page.goto(base + "/")
        assert severe_violations(page) == []
        page.select_option("#category", "complaint")
        page.fill("#subject", "路灯不亮")
        page.fill("#text", "人民路12号门口的路灯坏了三天，晚上很黑，请尽快修理。")
        page.select_option("#district", "翠屏区")
        page.fill("#name", "王小明")
        page.fill("#phone", "13812345678")
        page.set_input_files("#attachments", str(photo))
        page.check("input[name=publish]")
        screenshot(page, "web-form")
        page.wait_for_timeout(1000)  # a person takes longer than the minimum fill time
        page.click("button[type=submit]")
        page.wait_for_selector("#tracking-number")
        screenshot(page, "web-submitted")
        number = page.inner_text("#tracking-number")
        code = page.inner_text("#verification-code")
        assert re.fullmatch(r"\d{14}[\dX]", number) and re.fullmatch(r"\d{6}", code)

        # A department answers (the routing core's actions, as the console will call them).
        engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'hotline.db'}", pii=PII)
        workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: MONDAY)
        with make_sessionmaker(engine).begin() as s:
            workflow.sync_departments(s)
            letter = s.scalars(select(Letter).where(Letter.tracking_number == number)).one()
            assert [a.media_type for a in letter.attachments] == ["image/jpeg"]
            letter.status = "triage"
            workflow.assign(s, letter, ["city-admin"], "assign", "time_limited", OPERATOR_ZHANG)
            workflow.sign(s, letter, CITY_ADMIN)
            workflow.reply(s, letter, "路灯已于今日修复，感谢您的监督。", CITY_ADMIN, public=True)
        engine.dispose()

        page.click("text=查询进度")
        assert page.input_value("#number") == number
        page.fill("#code", code)
        page.click("button[type=submit]")
        page.wait_for_selector("#status")
        screenshot(page, "web-progress")
        assert severe_violations(page) == []
        assert page.inner_text("#status") == "已答复"
        assert "路灯已于今日修复" in page.content()

        page.goto(base + "/track")
        page.fill("#number", number)
        page.fill("#code", "000000" if code != "000000" else "111111")
        page.click("button[type=submit]")
        page.wait_for_selector(".problem")
        screenshot(page, "web-wrong-code")
        assert severe_violations(page) == []  # the tracking page, with its problem shown
        assert "未查到该来信" in page.content() and "路灯已于今日修复" not in page.content()

        page.goto(base + "/published")
        screenshot(page, "web-published")
        assert severe_violations(page) == []
        page.click(f"a[href$='/published/{number}']")
        page.wait_for_selector("article.letter")
        screenshot(page, "web-published-letter")
        assert severe_violations(page) == []
        shown = page.content()
        assert "路灯已于今日修复" in shown
        assert "王小明" not in shown and "13812345678" not in shown


def test_a_field_in_error_is_tied_to_its_message_and_the_form_stays_accessible(
    tmp_path: Path,
) -> None:
    port = free_port()
    with gateway(write_config(tmp_path, port)), chromium() as browser:
        page = phone_page(browser)
        page.goto(f"http://127.0.0.1:{port}/")
        # A report (举报) needs a real name and a phone number; this one has neither.
        page.select_option("#category", "report")
        page.fill("#text", "某小区有人夜间违规施工，噪音很大。")
        page.fill("#phone", "123")
        page.wait_for_timeout(1000)  # a person takes longer than the minimum fill time
        page.click("button[type=submit]")
        page.wait_for_selector(".error")
        screenshot(page, "web-form-errors")

        for field in ("name", "phone"):
            assert page.get_attribute(f"#{field}", "aria-invalid") == "true"
            message = page.get_attribute(f"#{field}", "aria-describedby")
            assert message and page.inner_text(f"#{message}") in (
                "举报须提供真实姓名。",
                "请填写正确的手机号码或带区号的固定电话。",
            )
        assert page.get_attribute("#text", "aria-invalid") is None
        assert page.get_attribute("#text", "aria-describedby") is None
        assert severe_violations(page) == []
        # The first thing a keyboard reaches skips the header to the form.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "跳到主要内容"
        assert page.evaluate("document.activeElement.getAttribute('href')") == "#main"
