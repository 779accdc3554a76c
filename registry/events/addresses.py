"""Where webhooks may be sent: http(s) URLs whose host is a public address (no SSRF).

Checked when a subscription is made or changed (the host is resolved), and again on every
delivery against the address actually connected to, since DNS can change in between.
"""
import ipaddress
import socket
from urllib.parse import urlsplit

from registry.errors import InvalidInput

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")


def forbidden_reason(address: str) -> str | None:
    """Why ``address`` may not receive webhooks (loopback, private …), or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    # Shared (100.64/10, cloud metadata such as 100.100.100.200), documentation, 6to4 …
    return None if ip.is_global else "non-public"


def check_url(url: str, allow_private: bool) -> str:
    """The URL if webhooks may go there, else InvalidInput saying what to change."""
    if len(url) > MAX_URL_LENGTH:
        raise _bad(f"the url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise _bad(f"the url is not valid ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise _bad(f"the url must start with http:// or https://, not {parts.scheme or 'nothing'}")
    if not parts.hostname:
        raise _bad("the url has no host")
    if not allow_private:
        for address in _resolve(parts.hostname, port):
            reason = forbidden_reason(address)
            if reason is not None:
                raise _bad(
                    f"the url's host {parts.hostname} resolves to {address}, a {reason} address; "
                    "webhooks go to public addresses only (the deployment can set WEBHOOK_ALLOW_PRIVATE)"
                )
    return url


def _resolve(host: str, port: int) -> set[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _bad(f"the url's host {host} does not resolve; give a host name that does") from None
    return {info[4][0] for info in infos}


def _bad(detail: str) -> InvalidInput:
    return InvalidInput(detail, errors={"url": [detail]})
