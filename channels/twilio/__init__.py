"""Twilio, for cities that rent numbers instead of running SIP trunks and modems:
webhooks for SMS and calls (through the shared IVR), REST for outbound SMS."""
