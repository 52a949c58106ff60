"""The console in a real browser against a running gateway: a citizen writes, the operator
dispatches, the clerk signs and replies, the citizen reads the reply, and the supervisor
sees an overdue letter. A screenshot of every page goes to the test artefacts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Browser, Page
from sqlalchemy import select

from gateway.contract.config import DeadlinesConfig
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from gateway.frontends.console import accounts
from store.db import make_engine, make_sessionmaker
from store.models import Letter
from tests.conftest import PII, SHANGHAI
from tests.console.conftest import PASSWORD
from tests.gateway.test_workflow import MONDAY, OPERATOR_ZHANG, ROUTING
from tests.support.axe import severe_violations
from tests.support.browser import chromium, screenshot
from tests.support.processes import free_port, gateway

CONFIG = """\
http:
  port: {port}
channels:
  smtp: {{enabled: false}}
  gsm: {{enabled: false}}
  sip: {{enabled: false}}
  web: {{min_fill_seconds: 0}}
stt:
  workers: 0
routing:
  enabled: false
  districts: [翠屏区, 南溪区]
  departments:
    - {{code: city-admin, name: 市城市管理局}}
    - {{code: environment, name: 市生态环境局}}
"""


def desk_page(browser: Browser, base: str, username: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()
    page.goto(base + "/console/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("form.who")
    return page


def write_letter(page: Page, base: str, text: str) -> tuple[str, str]:
    page.goto(base + "/")
    page.select_option("#category", "inquiry")
    page.fill("#subject", "居住证办理")
    page.fill("#text", text)
    page.select_option("#district", "翠屏区")
    page.fill("#name", "王小明")
    page.fill("#phone", "13812345678")
    page.click("button[type=submit]")
    page.wait_for_selector("#tracking-number")
    return page.inner_text("#tracking-number"), page.inner_text("#verification-code")


def test_a_letter_goes_from_citizen_to_department_and_back_in_a_browser(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(port=port), encoding="utf-8")
    base = f"http://127.0.0.1:{port}"
    with gateway(config), chromium() as browser:
        engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'hotline.db'}", pii=PII)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as s:
            for username, role, department in (
                ("zhang", "operator", None),
                ("li", "department", "city-admin"),
                ("du", "supervisor", None),
            ):
                accounts.add_user(
                    s, username, f"用户{username}", role, PASSWORD, MONDAY, department
                )

        citizen = browser.new_context(locale="zh-CN").new_page()
        number, code = write_letter(citizen, base, "请问办理居住证需要什么材料？")
        late, _ = write_letter(citizen, base, "请问公积金怎么提取？")
        # The second letter was dispatched long ago and never answered: overdue now.
        past = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: MONDAY)
        with sessions.begin() as s:
            letter = s.scalars(select(Letter).where(Letter.tracking_number == late)).one()
            past.clock = lambda: MONDAY - timedelta(days=60)
            past.assign(s, letter, ["environment"], "assign", "time_limited", OPERATOR_ZHANG)
        engine.dispose()

        citizen.goto(base + "/console/login")
        assert severe_violations(citizen) == []
        # The first link on every page skips the header to the page's own content.
        first = "document.querySelector('a[href]')"
        assert citizen.evaluate(f"[{first}.textContent, {first}.getAttribute('href')]") == [
            "跳到主要内容",
            "#main",
        ]
        operator = desk_page(browser, base, "zhang")
        screenshot(operator, "console-inbox")
        operator.click(f"a[href='/console/letters/{number}']")
        operator.wait_for_selector("#act-assign")
        screenshot(operator, "console-letter-operator")
        assert severe_violations(operator) == []
        operator.select_option("#act-assign select[name=department]", "city-admin")
        operator.click("#act-assign button[type=submit]")
        operator.wait_for_selector(".notice")
        assert operator.inner_text("#status") == "已交办"
        screenshot(operator, "console-dispatched")
        assert "138****5678" in operator.content() and "13812345678" not in operator.content()

        clerk = desk_page(browser, base, "li")
        screenshot(clerk, "console-queue")
        assert late not in clerk.content()
        clerk.click(f"a[href='/console/letters/{number}']")
        clerk.click("#act-sign button[type=submit]")
        clerk.wait_for_selector("#act-reply")
        assert clerk.inner_text("#status") == "已签收"
        clerk.fill("#act-reply textarea[name=text]", "请携带身份证和租房合同到社区服务中心办理。")
        screenshot(clerk, "console-reply")
        assert severe_violations(clerk) == []
        clerk.click("#act-reply button[type=submit]")
        clerk.wait_for_selector(".notice")
        assert clerk.inner_text("#status") == "已答复"
        assert "13812345678" not in clerk.content() and "王小明" not in clerk.content()

        citizen.goto(base + "/track")
        citizen.fill("#number", number)
        citizen.fill("#code", code)
        citizen.click("button[type=submit]")
        citizen.wait_for_selector("#status")
        screenshot(citizen, "console-citizen-progress")
        assert "租房合同" in citizen.content()

        supervisor = desk_page(browser, base, "du")
        screenshot(supervisor, "console-supervision")
        overdue = supervisor.inner_text("#board-overdue")
        assert late in overdue and "已超期" in overdue and number not in overdue
        for name in ("follow-up", "dashboard"):
            supervisor.goto(f"{base}/console/{name}")
            screenshot(supervisor, f"console-{name}")
