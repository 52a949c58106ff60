"""The citizen's form under load: letters stored per second through POST /letters on a
running `hotline serve`, against the same server answering a static page in the same run.

    .venv/bin/python -m benchmarks.web [--letters 2000] [--concurrency 16] [--postgresql URL]

Each submission is a real multipart form (text, fields, a small photo) with its own
signed token, fetched beforehand so that only the POSTs are timed; every one must come
back with a tracking number. The baseline is GET /static/site.css on the same listener:
the ratio is what the form's checks, the photo's decoding and the durable store cost.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from tests.support.processes import free_port, gateway

TOKEN = re.compile(r'name="token" value="([^"]+)"')


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 120, 30)).save(out, "JPEG", quality=80)
    return out.getvalue()


async def tokens(client: httpx.AsyncClient, count: int) -> list[str]:
    found = []
    for _ in range(count):
        match = TOKEN.search((await client.get("/")).text)
        assert match
        found.append(match.group(1))
    return found


async def timed(count: int, concurrency: int, one: object) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def measure(base: str, letters: int, concurrency: int) -> tuple[float, float]:
    jpeg = photo()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        forms = await tokens(client, letters)
        stored: list[str] = []

        async def static(_: int) -> None:
            assert (await client.get("/static/site.css")).status_code == 200

        async def submit(n: int) -> None:
            data = {
                "token": forms[n],
                "category": "complaint",
                "subject": "路灯不亮",
                "text": f"翠屏区人民路{n}号门口的路灯坏了三天，晚上很黑，请尽快修理。",
                "name": "王小明",
                "phone": f"139{n:08d}",
            }
            files = [("attachments", ("现场.jpg", jpeg, "image/jpeg"))]
            page = await client.post("/letters", data=data, files=files)
            number = re.search(r'id="tracking-number">(\w+)<', page.text)
            assert page.status_code == 200 and number, page.text[:300]
            stored.append(number.group(1))

        await timed(200, concurrency, static)  # warm
        baseline = await timed(letters * 4, concurrency, static)
        rate = await timed(letters, concurrency, submit)
        assert len(set(stored)) == letters
    return rate, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgresql", help="a PostgreSQL URL instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"http:\n  port: {port}\n"
            "channels:\n  smtp:\n    enabled: false\n  gsm:\n    enabled: false\n"
            "  sip:\n    enabled: false\n"
            "  web:\n    min_fill_seconds: 0\n"
            f"    letters_per_ip_per_hour: {args.letters * 10}\n"
            f"    letters_per_phone_per_day: {args.letters * 10}\n"
            "stt:\n  workers: 0\nrouting:\n  enabled: false\n",
            encoding="utf-8",
        )
        env = {"HOTLINE_DATABASE_URL": args.postgresql} if args.postgresql else {}
        with gateway(config, **env):
            rate, baseline = asyncio.run(
                measure(f"http://127.0.0.1:{port}", args.letters, args.concurrency)
            )
    database = "PostgreSQL" if args.postgresql else "SQLite"
    print(f"web form ({database}): {rate:.0f} letters/s stored, static page {baseline:.0f}/s")
    print(f"ratio form/static: {rate / baseline:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
