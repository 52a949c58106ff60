"""Is an address one of ours: trusted proxies, SIP trunks."""

from __future__ import annotations

from ipaddress import ip_address, ip_network


def in_networks(address: str, networks: list[str]) -> bool:
    """True when ``address`` is in one of ``networks`` (addresses or CIDRs); junk is not."""
    try:
        ip = ip_address(address.strip("[]"))
    except ValueError:
        return False
    return any(ip in ip_network(n, strict=False) for n in networks)
