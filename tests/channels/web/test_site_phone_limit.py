"""The web form's per-phone limit counts one number however the citizen wrote it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from store.models import Letter
from tests.channels.web.test_site import serve
from tests.conftest import Parts, count_rows


async def test_one_number_written_three_ways_is_one_phone_to_the_daily_limit(
    engine: Engine, parts: Parts, tmp_path: Path
) -> None:
    async for web in serve(engine, parts, tmp_path, letters_per_phone_per_day=1):
        assert (await web.submit(phone="13812345678")).status_code == 200
        for written in ("+86 138 1234 5678", "8613812345678", "138-1234-5678"):
            again = await web.submit(phone=written, text=f"又写了一封（{written}）")
            assert again.status_code == 429, written
            assert "提交过于频繁" in again.text and f"又写了一封（{written}）" in again.text
        assert (await web.submit(phone="0831-2345678")).status_code == 200
        assert (await web.submit(phone="08312345678")).status_code == 429
    assert count_rows(engine, Letter) == 2
