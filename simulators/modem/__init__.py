"""A GSM modem simulator on a pty: real AT commands for SMS software (docs/simulators/modem.md)."""

from simulators.modem.at import ModemProfile, SentMessage
from simulators.modem.device import ModemSimulator

__all__ = ["ModemProfile", "ModemSimulator", "SentMessage"]
