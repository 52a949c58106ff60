"""``python -m simulators.modem``: a simulated modem plus its control socket, until SIGTERM."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from simulators.modem.at import ModemProfile
from simulators.modem.control import ControlServer
from simulators.modem.device import ModemSimulator


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hotline-modem-sim", description=__doc__)
    parser.add_argument("--capacity", type=int, default=30, help="SIM SMS records (default 30)")
    parser.add_argument(
        "--control",
        type=_address,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="loopback address of the JSON-lines control socket (default 127.0.0.1:0)",
    )
    parser.add_argument("--symlink", metavar="PATH", help="keep a stable path pointing at the pty")
    parser.add_argument("--pin", help="the SIM asks for this PIN (AT+CPIN)")
    parser.add_argument("--smsc", default=ModemProfile.smsc, help="service centre number")
    parser.add_argument("--no-cscs", action="store_true", help="a modem without AT+CSCS")
    parser.add_argument("--no-clac", action="store_true", help="a modem without AT+CLAC")
    parser.add_argument("--verbose", action="store_true", help="log the AT traffic to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        profile = ModemProfile(
            capacity=args.capacity,
            pin=args.pin,
            smsc=args.smsc,
            charsets=None if args.no_cscs else ModemProfile.charsets,
            clac=not args.no_clac,
        )
        control_host, control_port = args.control
        sim = ModemSimulator(profile, symlink=args.symlink)
        control = ControlServer(sim, control_host, control_port)
    except (ValueError, OSError) as error:
        print(f"hotline-modem-sim: {error}", file=sys.stderr)
        return 2
    # Block the stop signals before any thread starts, so that only sigwait below sees them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        device = sim.start()
        control.start()
        print(
            json.dumps({"device": device, "control": control.address, "symlink": args.symlink}),
            flush=True,
        )
        signal.sigwait(stop_signals)
    finally:
        control.stop()
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
