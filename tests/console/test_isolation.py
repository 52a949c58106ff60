"""Every console route a department clerk can reach, against another department's letter:
refused (403 for pages of other roles, 404 for the letter) and nothing of it shown; and on
the clerk's own letters, the canary citizens' details never appear unmasked. The routes come
from the app itself, so a page added later without a case here fails."""

from __future__ import annotations

import re

from gateway.frontends.console.app import PAGES
from tests.console.conftest import Desk
from tests.support.canaries import COMPLAINANT, REPORTER, Canary


def planted(canary: Canary, matter: str) -> str:
    return (
        f"我是{canary.name}，身份证号{canary.id_number}，电话{canary.dashed}，"
        f"邮箱{canary.email}，住{canary.address}。{matter}"
    )


async def test_no_console_route_shows_a_clerk_another_departments_letter(desk: Desk) -> None:
    theirs = desk.letter(
        1, text=planted(REPORTER, "举报楼下工地夜间噪音扰民。"), citizen=REPORTER.citizen()
    )  # noise: environment
    mine = desk.letter(
        2, text=planted(COMPLAINANT, "翠屏区人民路的路灯坏了。"), citizen=COMPLAINANT.citizen()
    )  # streetlight: city-admin
    li = await desk.signed_in("li")
    wang = await desk.signed_in("wang")
    assert "夜间噪音" in (await wang.get(f"/console/letters/{theirs}")).text  # a real case
    zhang = await desk.signed_in("zhang")
    shown = await zhang.post(f"/console/letters/{mine}/reveal", reason="核实来信人身份")
    assert COMPLAINANT.leaks(shown.text), "the canary is planted and an operator can reveal it"

    for path, methods, right, _ in PAGES:
        filled = re.sub(r"\{\w+:row\}", "1", path.replace("{number}", theirs))
        url = "/console" + re.sub(r"\{\w+\}", "x", filled)
        for method in methods:
            if method == "GET":
                answer = await li.get(url)
            else:
                answer = await li.post(url, action="sign", reason="需要联系来信人", text="x")
            reachable = right in ("letter", "queue")
            expected = (404 if "{number}" in path else 200) if reachable else 403
            assert answer.status_code == expected, (method, url, answer.status_code)
            assert theirs not in answer.text and "夜间噪音" not in answer.text, (method, url)
            assert not REPORTER.leaks(answer.text), (method, url)

    for url in ("/console/queue", f"/console/letters/{mine}"):
        page = await li.get(url)
        # A complaint's address stays in its words: it is often where the clerk must go.
        leaked = [v for v in COMPLAINANT.leaks(page.text) if v != COMPLAINANT.address]
        assert mine in page.text and not leaked, (url, leaked)
    assert re.search(r"136\*{4}4321", (await li.get(f"/console/letters/{mine}")).text)
