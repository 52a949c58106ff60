"""PJSIP's own log lines, from a real pjsua2 endpoint, come out as the gateway's records."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.processes import ROOT

# A process of its own: pjsua2 allows one Endpoint per process, and PJSIP writes to the
# file descriptors, which only a child's output shows whole.
CHILD = """
import sys
from channels.sip.pjthread import PjThread
from gateway.contract.logs import configure

configure("DEBUG", "json")
pjsip = PjThread("pjsip-test", log_level={level})
pjsip.start()
pjsip.add_transport("udp", "127.0.0.1", 0)
pjsip.call(lambda: pjsip.endpoint.utilLogWrite(2, "hotline.test", "a warning from PJSIP"))
pjsip.stop()
"""


def endpoint_output(level: int) -> tuple[list[dict[str, Any]], str]:
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(level=level)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    records = [json.loads(line) for line in child.stderr.splitlines()]
    return records, child.stdout


@pytest.mark.parametrize("level", [1, 4], ids=["errors-only", "debug"])
def test_pjsip_lines_are_structured_records_at_their_level_and_nothing_is_raw(
    level: int,
) -> None:
    records, stdout = endpoint_output(level)  # every stderr line parsed as JSON

    assert stdout == ""
    pjsip = [r for r in records if r["event"] == "pjsip.log"]
    assert all(r["logger"] == "channels.sip.pjthread" for r in pjsip)
    levels = {r["line"]: r["level"] for r in pjsip}
    if level >= 2:
        assert levels["hotline.test a warning from PJSIP"] == "warning"
        started = [line for line in levels if line.startswith("pjsua_core.c pjsua version")]
        assert [levels[line] for line in started] == ["info"]
        assert "debug" in levels.values()
    else:  # the configured verbosity still holds: no warning, info or debug lines
        assert set(levels.values()) <= {"error", "critical"}
