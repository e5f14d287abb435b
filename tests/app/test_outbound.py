"""The outbound guard (a pure function, no Flask) and the guarded call against a real local HTTP server."""
from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from app.errors import UpstreamError, UpstreamTimeout, ValidationFailed
from app.runtime.outbound import (
    BODY_LIMIT,
    REDACTED,
    Allowlist,
    OutboundBlocked,
    blocked_reason,
    check_url,
    send,
)

LOCAL = ["127.0.0.1", "localhost"]
METADATA_URL = "http://169.254.169.254/latest/meta-data/"


class _Handler(BaseHTTPRequestHandler):
    """Echoes the request as JSON; /slow sleeps, /redirect redirects to the metadata address, /big is
    100 KiB, /drip trickles its body out slower than any test timeout."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        parts = urlsplit(self.path)
        record = {
            "method": self.command,
            "path": parts.path,
            "raw_path": self.path,
            "query": parse_qs(parts.query),
            "headers": dict(self.headers.items()),
            "body": body,
        }
        self.server.requests.append(record)
        if parts.path == "/slow":
            time.sleep(1.0)
        if parts.path == "/redirect":
            self._send(302, b"", {"Location": METADATA_URL})
        elif parts.path == "/big":
            self._send(200, b"a" * (100 * 1024), {"Content-Type": "text/plain"})
        elif parts.path == "/drip":
            self._drip()
        else:
            self._send(200, json.dumps(record).encode(), {"Content-Type": "application/json"})

    def _send(self, status, payload, headers):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drip(self):
        self.send_response(200)
        self.send_header("Content-Length", "400")
        self.end_headers()
        for _ in range(40):
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            time.sleep(0.05)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class EchoServer(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 and an ephemeral port, in a thread."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is expected here

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    with EchoServer() as srv:
        yield srv


@pytest.fixture
def echo(server):
    server.requests.clear()
    return server


def fake_resolver(*addresses):
    return lambda host, port: list(addresses)


# --- check_url: refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://10.0.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:8080/", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://127.0.0.1/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://192.168.1.10/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://100.64.0.1/", "non-global"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:a9fe:a9fe]/", "link-local"),  # ::ffff:169.254.169.254 in hex
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 wrapping 10.0.0.1
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one decimal number
        ("http://0x7f.1/", "loopback"),
    ],
)
def test_internal_addresses_are_refused_without_allowlist(url, reason):
    with pytest.raises(OutboundBlocked) as info:
        check_url(url, [])
    error = info.value
    assert error.status == 403 and error.code == "outbound_blocked"
    assert error.details["reason"].startswith(reason)
    assert error.details["address"] in error.message


def test_refusal_names_the_address_a_name_resolves_to():
    with pytest.raises(OutboundBlocked) as info:
        check_url("https://metadata.example/x", [], resolve=fake_resolver("169.254.169.254"))
    assert info.value.details == {
        "url": "https://metadata.example/x", "host": "metadata.example",
        "address": "169.254.169.254", "reason": "link-local",
    }


def test_every_resolved_address_must_pass():
    resolver = fake_resolver("93.184.216.34", "10.1.2.3")
    with pytest.raises(OutboundBlocked) as info:
        check_url("http://mixed.example/", [], resolve=resolver)
    assert info.value.details["address"] == "10.1.2.3"


@pytest.mark.parametrize("url", ["ftp://example.com/f", "file:///etc/passwd", "gopher://x/", "javascript:alert(1)", "//x/y"])
def test_non_http_schemes_are_refused(url):
    with pytest.raises(OutboundBlocked) as info:
        check_url(url, LOCAL, resolve=fake_resolver("93.184.216.34"))
    assert info.value.details["reason"] == "scheme"


def test_url_without_host_is_invalid():
    with pytest.raises(ValidationFailed) as info:
        check_url("http:///path", [])
    assert info.value.code == "invalid_url"


def test_unresolvable_host_is_an_upstream_error():
    def failing(host, port):
        raise socket.gaierror("Name or service not known")

    with pytest.raises(UpstreamError) as info:
        check_url("http://nowhere.invalid/", [], resolve=failing)
    assert info.value.details == {"host": "nowhere.invalid", "reason": "dns"}


# --- check_url: what passes -----------------------------------------------------------------------


def test_public_addresses_pass():
    assert check_url("https://example.com/a?b=1", [], resolve=fake_resolver("93.184.216.34")) == ["93.184.216.34"]
    assert check_url("http://8.8.8.8/", []) == ["8.8.8.8"]
    assert check_url("http://[2606:4700:4700::1111]/", []) == ["2606:4700:4700::1111"]
    assert blocked_reason(ipaddress.ip_address("::ffff:8.8.8.8")) is None


def test_allowlisted_host_name_passes_whatever_it_resolves_to():
    assert check_url("http://localhost:5000/", ["localhost"]) == []
    assert check_url("http://LOCALHOST./", ["localhost"]) == []
    # naming the host does not allowlist its address written out
    with pytest.raises(OutboundBlocked):
        check_url("http://127.0.0.1/", ["localhost"])


def test_allowlisted_ip_and_cidr():
    assert check_url("http://127.0.0.1:9/", ["127.0.0.1"]) == ["127.0.0.1"]
    assert check_url("http://[::ffff:127.0.0.1]/", ["127.0.0.1"])  # the same address, IPv6-mapped
    assert check_url("http://internal.example/", ["10.0.0.0/8"], resolve=fake_resolver("10.20.30.40"))
    assert check_url("http://[::1]/", ["::1"]) == ["::1"]
    with pytest.raises(OutboundBlocked):
        check_url("http://192.168.0.1/", ["10.0.0.0/8"])


def test_wildcard_host_entries_match_subdomains_only():
    rules = Allowlist.parse(["*.corp.example"])
    resolver = fake_resolver("10.0.0.5")
    assert check_url("http://api.corp.example/", rules, resolve=resolver) == []
    for host in ("corp.example", "evilcorp.example"):
        with pytest.raises(OutboundBlocked):
            check_url(f"http://{host}/", rules, resolve=resolver)


# --- send: the real call --------------------------------------------------------------------------


def test_send_echoes_and_returns_a_few_headers(echo):
    result = send("POST", f"{echo.base}/echo?x=1", allowlist=LOCAL, headers={"X-Test": "yes"},
                  json_body={"a": 1}, timeout=5)
    assert result.status_code == 200 and result.truncated is False
    assert result.headers["content-type"] == "application/json"
    assert set(result.headers) <= {"content-type", "content-length", "content-encoding", "location",
                                   "retry-after", "cache-control", "etag", "last-modified"}
    seen = json.loads(result.body)
    assert seen["method"] == "POST" and seen["query"] == {"x": ["1"]}
    assert seen["headers"]["X-Test"] == "yes" and json.loads(seen["body"]) == {"a": 1}
    assert result.latency_ms > 0


def test_send_refuses_before_connecting(echo):
    with pytest.raises(OutboundBlocked):
        send("GET", f"{echo.base}/echo", allowlist=[], timeout=5)
    assert echo.requests == []


def test_redirects_are_returned_not_followed(echo):
    result = send("GET", f"{echo.base}/redirect", allowlist=LOCAL, timeout=5)
    assert result.status_code == 302
    assert result.headers["location"] == METADATA_URL
    assert [r["path"] for r in echo.requests] == ["/redirect"]


def test_body_is_capped_at_64_kib(echo):
    result = send("GET", f"{echo.base}/big", allowlist=LOCAL, timeout=5)
    assert result.truncated is True
    assert len(result.body.encode()) == BODY_LIMIT


def test_secrets_are_redacted_from_the_echoed_body(echo):
    result = send("GET", f"{echo.base}/echo", allowlist=LOCAL, headers={"Authorization": "Bearer s3cr3t-abc"},
                  timeout=5, redact=["Bearer s3cr3t-abc"])
    assert echo.requests[0]["headers"]["Authorization"] == "Bearer s3cr3t-abc"
    assert "s3cr3t" not in result.body
    assert json.loads(result.body)["headers"]["Authorization"] == REDACTED


def test_slow_answer_times_out(echo):
    with pytest.raises(UpstreamTimeout) as info:
        send("GET", f"{echo.base}/slow", allowlist=LOCAL, timeout=0.2)
    assert info.value.status == 504 and info.value.code == "timeout"


def test_a_dripping_body_cannot_outlast_the_timeout(echo):
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        send("GET", f"{echo.base}/drip", allowlist=LOCAL, timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_an_upstream_error():
    with pytest.raises(UpstreamError) as info:
        send("GET", f"http://127.0.0.1:{closed_port()}/", allowlist=LOCAL, timeout=5)
    assert info.value.status == 502 and info.value.code == "upstream_error"


def test_the_token_of_a_bearer_secret_is_redacted_on_its_own(echo):
    result = send("POST", f"{echo.base}/echo", allowlist=LOCAL, json_body={"echo": "tok-0123456789"},
                  headers={"Authorization": "Bearer tok-0123456789"}, timeout=5,
                  redact=["Bearer tok-0123456789"])
    assert "tok-0123456789" not in result.body
    assert json.loads(json.loads(result.body)["body"]) == {"echo": REDACTED}


# --- pinned resolution (DNS rebinding) ------------------------------------------------------------

def test_send_connects_to_the_address_the_guard_approved_not_to_a_second_lookup(server):
    """The name resolves nowhere (.invalid) except through the guard's resolver, which answers the
    allowlisted 127.0.0.1 once: the call can reach the echo server only through the pinned address."""
    port = server.server_address[1]
    lookups = []

    def rebinding_dns(host, port_):
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["169.254.169.254"]

    result = send("GET", f"http://rebind.example.invalid:{port}/echo", allowlist=["127.0.0.1"],
                  resolve=rebinding_dns)
    assert result.status_code == 200
    assert lookups == ["rebind.example.invalid"]  # looked up once, by the guard
    assert server.requests[-1]["headers"]["Host"] == f"rebind.example.invalid:{port}"


def test_the_web_crawler_pins_every_hop_too(server, tmp_path):
    from knowledge.connectors import WebConnector

    port = server.server_address[1]
    seen = []

    def guard(url):
        seen.append(url)
        return ["127.0.0.1"]  # what the app's guard returns for an approved host

    items = list(WebConnector([f"http://docs.example.invalid:{port}/page"], allow_url=guard, delay=0).run())
    assert items and items[0].read()
    assert any(r["headers"].get("Host") == f"docs.example.invalid:{port}" for r in server.requests)
    assert seen and all("docs.example.invalid" in url for url in seen)
