"""Where webhooks may be sent: http(s) URLs whose host is a public address (no SSRF).

Checked when a subscription is made or changed (the host is resolved), and again on every
delivery against the address actually connected to, since DNS can change in between. The URL is
read by the parser that sends it (urllib3's, under requests), and anything two parsers could read
differently (a backslash, user info, spaces or control characters) is refused outright.
"""
import ipaddress
import socket
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

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
    if "\\" in url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise _bad("the url holds a backslash, a space or a control character; percent-encode it")
    try:
        parts = parse_url(url)
        other = urlsplit(url)
    except (LocationParseError, ValueError) as exc:
        raise _bad(f"the url is not valid ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise _bad(f"the url must start with http:// or https://, not {parts.scheme or 'nothing'}")
    if not parts.host:
        raise _bad("the url has no host")
    if parts.auth is not None or "@" in (other.netloc or ""):
        raise _bad("the url holds user info (user@host); put credentials in the path or query, or use the signature")
    if parts.port == 0:
        raise _bad("the url's port is 0; give a port from 1 to 65535, or none")
    host = parts.host.strip("[]").lower()
    if host != (other.hostname or "").lower():
        raise _bad("the url's host reads differently to different parsers; write it plainly")
    if not allow_private:
        for address in _resolve(host, parts.port or (443 if parts.scheme == "https" else 80)):
            reason = forbidden_reason(address)
            if reason is not None:
                raise _bad(
                    f"the url's host {host} resolves to {address}, a {reason} address; "
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
