"""What a fax bomb costs the SMTP channel before it answers: time and peak memory to read
a 200-page 13000 x 13000 fax mail (about 5 MB of MIME: G4 compresses a blank page to a few
KB), in a child process so its ru_maxrss is the mail's alone.

    .venv/bin/python -m benchmarks.fax_bomb [--pages 200] [--side 13000]

It runs the channel's own LetterHandler.read (MIME parsing, fax detection, the page limits,
the split into PNG pages), the work done off the event loop before the 250 or 552.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

from tests.support.faxes import bomb_tiff

CHILD = """
import json, resource, sys, time
from aiosmtpd.smtp import Envelope
from channels.mail.smtp import LetterHandler
from gateway.contract.config import SmtpConfig

raw = sys.stdin.buffer.read()
handler = LetterHandler(SmtpConfig(), accept=None)
envelope = Envelope()
envelope.mail_from, envelope.rcpt_tos = "faxserver@example.cn", ["fax@hotline.local"]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
try:
    contact = handler.read(raw, envelope)
    outcome = f"accepted: {len(contact.attachments)} pages split"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
took = time.monotonic() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "seconds": took, "rss_before_kb": before,
                  "rss_peak_kb": after}))
"""


def bomb_mail(pages: int, side: int) -> bytes:
    message = EmailMessage()
    message["From"] = "faxserver@example.cn"
    message["To"] = "fax@hotline.local"
    message["Subject"] = "Fax from 0831-2345678"
    message["Message-ID"] = "<bomb@faxserver.local>"
    message.set_content(f"You have received a {pages} page fax.")
    message.add_attachment(
        bomb_tiff(pages, side, side), maintype="image", subtype="tiff", filename="fax.tif"
    )
    return message.as_bytes(policy=SMTP_POLICY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--side", type=int, default=13000)
    args = parser.parse_args()
    raw = bomb_mail(args.pages, args.side)
    done = subprocess.run([sys.executable, "-c", CHILD], input=raw, capture_output=True, check=True)
    result = json.loads(done.stdout)
    print(f"mail: {len(raw) / 1024:.0f} KB, {args.pages} pages of {args.side}x{args.side}")
    print(f"outcome: {result['outcome'][:160]}")
    print(f"time to answer: {result['seconds']:.3f} s")
    grown = (result["rss_peak_kb"] - result["rss_before_kb"]) / 1024
    print(f"peak RSS: {result['rss_peak_kb'] / 1024:.0f} MB ({grown:.0f} MB grown reading it)")


if __name__ == "__main__":
    main()
