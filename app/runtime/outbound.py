"""Outbound HTTP on behalf of users and agents: the SSRF guard and the one guarded call.

`check_url(url, allowlist)` is a pure function (no Flask, no database): it refuses non-http(s) URLs and
any host that resolves to a private, loopback, link-local, reserved, multicast or unspecified address
(IPv4 and IPv6, IPv4-mapped IPv6 included), unless the host name, its IP or a CIDR containing it is in
the allowlist. `send(...)` checks, then calls with `requests`: no redirects (a 30x answer is returned,
never followed, so a redirect cannot reach a forbidden address), a timeout, a capped body.

DNS rebinding: the guard resolves the name, then an HTTP client would resolve it again to connect, and a
hostile DNS server can answer a public address to the first lookup and a private one to the second.
`send` connects to the address the guard approved instead (knowledge/connectors/pinning.py: TLS still
checks the certificate against the name); the web and git connectors pin the same way.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from app.errors import Forbidden, UpstreamError, UpstreamTimeout, ValidationFailed
from knowledge.connectors.pinning import PinnedAdapter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

ALLOWED_SCHEMES = ("http", "https")
BODY_LIMIT = 64 * 1024
# Read a little past the limit so a secret cut in half by the limit is still found and redacted.
_REDACT_SLACK = 4096
_CHUNK = 8192
REDACTED = "[redacted]"
KEPT_RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "content-encoding",
    "location",
    "retry-after",
    "cache-control",
    "etag",
    "last-modified",
)
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (like ::ffff:0:0/96 and 6to4).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundBlocked(Forbidden):
    """A destination the outbound policy refuses (scheme, or an internal address not allowlisted)."""

    code = "outbound_blocked"


@dataclass(frozen=True)
class Allowlist:
    """Parsed allowlist entries: exact host names, `*.suffix` wildcards, IPs and CIDRs."""

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str] | None) -> Allowlist:
        hosts, suffixes, networks = set(), [], []
        for raw in entries or ():
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                suffixes.append(entry[1:])  # keep the dot: "*.corp" matches "a.corp", not "evilcorp"
            else:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks))

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(host.endswith(suffix) for suffix in self.suffixes)

    def allows_ip(self, ip: IPAddress) -> bool:
        candidates = [ip]
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            candidates.append(embedded)
        return any(c.version == net.version and c in net for c in candidates for net in self.networks)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why an address is internal ('loopback', 'private', ...), or None for a public address."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        # ::ffff:127.0.0.1 is 127.0.0.1; judge the IPv4 address it carries, not the IPv6 wrapper.
        reason = blocked_reason(embedded)
        return f"{reason} (embedded in {ip})" if reason else None
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("site-local", ip.version == 6 and ip.is_site_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        # Anything else IANA does not call global (e.g. 100.64.0.0/10 carrier-grade NAT).
        ("non-global", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _parse_ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)


def check_url(url: str, allowlist: Iterable[str] | Allowlist | None = None, *,
              resolve: Resolver = _resolve) -> list[str]:
    """Refuse a URL the outbound policy forbids; return the addresses its host resolved to (none are
    looked up, and [] is returned, for a host name the allowlist names).

    Raises OutboundBlocked (403, code `outbound_blocked`, details naming the address), ValidationFailed
    (422, `invalid_url`) for a URL without a host, UpstreamError (502) when the name does not resolve.
    """
    rules = allowlist if isinstance(allowlist, Allowlist) else Allowlist.parse(allowlist)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"Not a valid URL: {exc}.", code="invalid_url", details={"url": url}) from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise OutboundBlocked(
            f"Only http and https URLs may be called, not '{scheme or '(none)'}'.",
            details={"url": url, "scheme": scheme, "reason": "scheme"},
        )
    host = parts.hostname
    if not host:
        raise ValidationFailed("The URL has no host.", code="invalid_url", details={"url": url})
    if rules.allows_host(host):
        return []  # an allowlisted name is trusted whatever it resolves to
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise UpstreamError(
            f"The host '{host}' could not be resolved.", details={"host": host, "reason": "dns"}
        ) from exc
    if not addresses:
        raise UpstreamError(f"The host '{host}' has no address.", details={"host": host, "reason": "dns"})
    for text in addresses:
        ip = _parse_ip(text)
        reason = blocked_reason(ip)
        # Every address must pass: the HTTP client may connect to any of them.
        if reason and not rules.allows_ip(ip):
            raise OutboundBlocked(
                f"Calls to {host} are refused: it resolves to {ip}, a {reason} address that is not "
                "in the outbound allowlist (MAGNET_OUTBOUND_ALLOWLIST).",
                details={"url": url, "host": host, "address": str(ip), "reason": reason},
            )
    return addresses


def check_ssh_url(url: str, allowlist: Iterable[str] | Allowlist | None = None) -> list[str]:
    """Refuse an ssh:// URL unless the allowlist names its host (a host name, or an IP inside an allowlisted
    network): ssh reaches any port of any host, so it is never open by default, public hosts included.

    Needs no DNS lookup, so it also judges a source when it is configured. Returns [host] for an IP
    literal (the address to pin) and [] for an allowlisted name, which is trusted like in check_url.
    """
    rules = allowlist if isinstance(allowlist, Allowlist) else Allowlist.parse(allowlist)
    parts = urlsplit(url)
    host = (parts.hostname or "").strip("[]")
    if parts.scheme.lower() != "ssh" or not host:
        raise ValidationFailed("Not an ssh:// URL with a host.", code="invalid_url", details={"url": url})
    try:
        ip = _parse_ip(host)
    except ValueError:
        if rules.allows_host(host):
            return []
    else:
        if rules.allows_ip(ip):
            return [str(ip)]
    raise OutboundBlocked(
        f"ssh to {host} is refused: ssh is allowed only to hosts named in the outbound allowlist "
        "(MAGNET_OUTBOUND_ALLOWLIST); use an https:// URL instead.",
        details={"host": host, "reason": "ssh_not_allowlisted"},
    )


@dataclass
class OutboundResponse:
    status_code: int
    url: str
    latency_ms: float
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    truncated: bool = False

    def as_dict(self) -> dict:
        return {
            "status_code": self.status_code,
            "url": self.url,
            "latency_ms": self.latency_ms,
            "headers": self.headers,
            "body": self.body,
            "truncated": self.truncated,
        }


def send(
    method: str,
    url: str,
    *,
    allowlist: Iterable[str] | Allowlist | None,
    headers: dict[str, str] | None = None,
    json_body: object = None,
    data: bytes | None = None,
    timeout: float = 10.0,
    max_bytes: int = BODY_LIMIT,
    redact: Iterable[str] = (),
    resolve: Resolver = _resolve,
) -> OutboundResponse:
    """Check the URL, then make the call. Never follows redirects; the body is capped at `max_bytes`.

    `redact`: strings (secret header values) replaced by "[redacted]" in the returned body and headers,
    so a server that echoes its request cannot reveal a secret to whoever reads the result.
    `data`: a body sent byte for byte instead of `json_body` (e.g. one that was signed).
    Raises OutboundBlocked, UpstreamTimeout (504) or UpstreamError (502).
    """
    addresses = check_url(url, allowlist, resolve=resolve)
    secrets = _redactions(redact)
    started = time.monotonic()
    # trust_env=False: no proxy variables (they would bypass the address check) and no ~/.netrc
    # credentials attached to a user-chosen host.
    with requests.Session() as session:
        session.trust_env = False
        if addresses:  # an allowlisted name ([]) is trusted whatever it resolves to
            pins = PinnedAdapter()
            pins.pin(urlsplit(url).hostname, addresses[0])
            session.mount("http://", pins)
            session.mount("https://", pins)
        try:
            response = session.request(
                method, url, headers=headers, json=json_body, data=data, timeout=timeout,
                allow_redirects=False, stream=True,
            )
        except requests.Timeout as exc:
            raise _timeout(url, timeout) from exc
        except requests.RequestException as exc:
            raise _upstream(url, exc) from exc
        with response:
            raw, truncated = _read_capped(response, max_bytes, started + timeout, url, timeout)
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    text = _redact(raw.decode(_charset(response), errors="replace"), secrets)
    if truncated:
        text = text.encode()[:max_bytes].decode("utf-8", errors="ignore")
    kept = {
        name: _redact(response.headers[name], secrets)
        for name in KEPT_RESPONSE_HEADERS
        if name in response.headers
    }
    return OutboundResponse(response.status_code, url, latency_ms, kept, text, truncated)


def _read_capped(response: requests.Response, max_bytes: int, deadline: float, url: str,
                 timeout: float) -> tuple[bytes, bool]:
    """Read at most max_bytes (+ slack); the timeout bounds the whole read, not only each socket read."""
    wanted = max_bytes + _REDACT_SLACK
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= wanted:
            # read1: at most one socket read, so a server dripping bytes cannot outlast the deadline.
            chunk = response.raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if time.monotonic() > deadline:
                raise _timeout(url, timeout)
    except (ReadTimeoutError, TimeoutError) as exc:
        raise _timeout(url, timeout) from exc
    except (ProtocolError, OSError) as exc:
        raise _upstream(url, exc) from exc
    raw = b"".join(chunks)
    return raw[:wanted], size > max_bytes


def _charset(response: requests.Response) -> str:
    encoding = response.encoding or "utf-8"
    try:
        "".encode(encoding)
    except LookupError:
        return "utf-8"
    return encoding


def _redactions(values: Iterable[str]) -> list[str]:
    """The secrets, and the long words in them: a server may echo only the token of "Bearer <token>"."""
    found = set()
    for value in values:
        if value:
            found.add(value)
            found.update(word for word in value.split() if len(word) >= 8)
    return sorted(found, key=len, reverse=True)  # longest first, so a whole value is replaced whole


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _timeout(url: str, timeout: float) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"The call did not complete within {timeout:g} s.", details={"url": url, "timeout_seconds": timeout}
    )


def _upstream(url: str, exc: Exception) -> UpstreamError:
    # Only the failure's kind (ConnectionError, SSLError...): exception texts can be long and odd.
    return UpstreamError(
        "The call failed before a complete answer came back.",
        details={"url": url, "reason": type(exc).__name__},
    )
