"""axe-core, as axe-playwright-python bundles it (nothing downloaded), run on the page a
browser test has open."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

SEVERE = frozenset({"serious", "critical"})


def severe_violations(page: Page) -> list[str]:
    """The serious and critical violations on the page, one line each (empty when none)."""
    found = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in found
        if v["impact"] in SEVERE
    ]
