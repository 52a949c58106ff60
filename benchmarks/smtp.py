"""Mail stored per second by the gateway's SMTP channel, over an aiosmtpd that only says 250.

    .venv/bin/python -m benchmarks.smtp [--mails 400] [--clients 8] [--database-url URL]

Both servers run as their own process on loopback and are driven by the same client:
several concurrent connections, each sending its share with smtplib. The gateway runs as
`hotline serve` (SQLite by default), storing every mail as a letter before its 250.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import smtplib
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from tests.support.processes import Child, free_port


def message(run: str, n: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"市民{n} <citizen{n}@example.cn>"
    m["To"] = "12345@hotline.local"
    m["Subject"] = f"人民路{n}号路灯不亮"
    m["Message-ID"] = f"<{run}-{n}@example.cn>"
    m.set_content("翠屏区人民路的路灯已经坏了三天，晚上很黑，请尽快修理。\n" * 10)
    return m.as_bytes(policy=SMTP)


def drive(port: int, run: str, mails: int, clients: int) -> float:
    payloads = [message(run, n) for n in range(mails)]
    start = threading.Barrier(clients + 1)

    def client(share: list[bytes]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            start.wait()
            for raw in share:
                smtp.sendmail("citizen@example.cn", ["12345@hotline.local"], raw)

    threads = [
        threading.Thread(target=client, args=(payloads[i::clients],)) for i in range(clients)
    ]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return mails / (time.perf_counter() - began)


def baseline_server(port: int) -> None:
    from aiosmtpd.smtp import SMTP

    class Accept:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: SMTP(Accept()), "127.0.0.1", port)
        print("Uvicorn running (baseline ready)", file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start(kind: str, port: int, workdir: Path, database_url: str | None, routing: bool) -> Child:
    if kind == "baseline":
        args = [sys.executable, "-m", "benchmarks.smtp", "--serve-baseline", str(port)]
        env = dict(os.environ)
    else:
        config = workdir / "config.yaml"
        config.write_text(
            f"http:\n  port: {free_port()}\nchannels:\n  smtp:\n    port: {port}\n"
            "  gsm:\n    enabled: false\n  sip:\n    enabled: false\nstt:\n  workers: 0\n"
            f"routing:\n  enabled: {'true' if routing else 'false'}\n"
            "logging:\n  level: INFO\n",
            encoding="utf-8",
        )
        args = [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve"]
        env = {**os.environ, **({"HOTLINE_DATABASE_URL": database_url} if database_url else {})}
    child = Child(args, env)
    child.wait_for_line("Uvicorn running")
    return child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url")
    parser.add_argument(
        "--routing",
        action="store_true",
        help="route every letter as it arrives, as serve does by default (off: intake alone)",
    )
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        baseline_server(args.serve_baseline)
        return
    rates: dict[str, list[float]] = {"baseline": [], "gateway": []}
    with tempfile.TemporaryDirectory() as tmp:
        ports = {kind: free_port() for kind in rates}
        procs: dict[str, Child] = {}
        try:
            for kind in rates:
                procs[kind] = start(kind, ports[kind], Path(tmp), args.database_url, args.routing)
            for r in range(args.rounds):  # interleaved, so drift hits both alike
                for kind in rates:
                    rates[kind].append(drive(ports[kind], f"r{r}", args.mails, args.clients))
        finally:
            for child in procs.values():
                child.stop()
    best = {kind: sorted(values)[len(values) // 2] for kind, values in rates.items()}
    print(
        f"smtp ({args.clients} connections, {args.mails} mails, "
        f"{'SQLite' if not args.database_url else args.database_url.split(':')[0]}"
        f"{', routing on' if args.routing else ''}): "
        f"gateway {best['gateway']:.0f}/s, 250-only aiosmtpd {best['baseline']:.0f}/s, "
        f"gateway/baseline = {best['gateway'] / best['baseline']:.2f}"
    )


if __name__ == "__main__":
    main()
