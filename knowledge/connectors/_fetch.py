"""Polite HTTP for the web connector: URL normalisation, the app's outbound policy hook, robots.txt,
per-host request spacing, redirects checked hop by hop, and capped bodies.

Kept apart from ``web.py`` so the crawl logic there stays readable; nothing here knows about crawling.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import requests

from knowledge.connectors.pinning import PinnedAdapter
from knowledge.types import IngestError

MAX_REDIRECTS = 5
MAX_CRAWL_DELAY = 10.0  # a robots.txt asking for an hour between requests must not stall a sync forever
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute form of an http(s) URL: resolved against ``base``, lower-case scheme and host, no default
    port, no fragment, no credentials; None for other schemes or garbage."""
    try:
        parts = urlsplit(urljoin(base, url.strip()) if base else url.strip())
        port = parts.port
    except (ValueError, AttributeError):
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port and port != {"http": 80, "https": 443}[scheme]:
        host += f":{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def guard_verdict(allow_url: Callable[[str], Any] | None, url: str) -> tuple[str | None, list[str]]:
    """(why the app's outbound policy refuses ``url`` or None, the addresses it approved).

    ``allow_url(url)`` refuses by returning False or by raising (the exception's message is the reason);
    it may return the addresses it checked, which the caller then pins. No policy allows everything.
    """
    if allow_url is None:
        return None, []
    try:
        verdict = allow_url(url)
    except Exception as exc:  # the app's own error types are unknown here (knowledge/ never imports app/)
        return str(getattr(exc, "message", None) or exc) or type(exc).__name__, []
    if verdict is False:
        return "refused by the outbound policy", []
    return None, [str(a) for a in verdict] if isinstance(verdict, list | tuple) else []


def url_refusal(allow_url: Callable[[str], Any] | None, url: str) -> str | None:
    """Why the app's outbound policy refuses ``url``, or None if it is allowed (or there is no policy)."""
    return guard_verdict(allow_url, url)[0]


class PoliteFetcher:
    """The HTTP client of one crawl, safe to share between worker threads.

    Requests to one host are spaced ``delay`` seconds apart (or the host's robots.txt Crawl-delay, capped
    at MAX_CRAWL_DELAY); each robots.txt is fetched once, with the same session.
    """

    def __init__(self, session: requests.Session, *, user_agent: str, timeout: float, delay: float,
                 allow_url: Callable[[str], Any] | None, pins: PinnedAdapter | None = None) -> None:
        self.session, self.user_agent, self.timeout = session, user_agent, timeout
        self.delay, self.allow_url, self.pins = delay, allow_url, pins
        self._lock = threading.Lock()
        self._next_slot: dict[str, float] = {}
        self._delays: dict[str, float] = {}
        self._robots: dict[str, RobotFileParser | None] = {}
        self._robots_locks: dict[str, threading.Lock] = {}

    def robots_allow(self, url: str) -> bool:
        """Whether the host's robots.txt lets this user agent fetch ``url``."""
        parts = urlsplit(url)
        with self._lock:
            host_lock = self._robots_locks.setdefault(parts.netloc, threading.Lock())
        with host_lock:  # one worker fetches a host's robots.txt while the others wait for it
            if parts.netloc not in self._robots:
                self._robots[parts.netloc] = self._load_robots(f"{parts.scheme}://{parts.netloc}/robots.txt")
            robots = self._robots[parts.netloc]
        return robots is None or robots.can_fetch(self.user_agent, url)

    def get(self, url: str, max_bytes: int) -> tuple[str, int, Any, bytes]:
        """GET ``url`` as ``(final_url, status, headers, body)``; the body is read only below HTTP 400.

        Redirects are followed by hand so that every hop passes ``allow_url`` (IngestError ``blocked``);
        network errors are IngestError ``fetch_failed`` and a body over ``max_bytes`` is ``too_large``.
        """
        start = url
        self._approve(url, f"{url} is blocked", start)
        for _ in range(MAX_REDIRECTS + 1):
            self._wait_turn(url)
            try:
                with self.session.get(url, timeout=self.timeout, allow_redirects=False, stream=True) as resp:
                    if resp.is_redirect:
                        target = normalize_url(resp.headers.get("Location", ""), url)
                        if target is None:
                            raise IngestError("blocked", f"{url} redirects to a URL that is not http(s)", url=start)
                        self._approve(target, f"{url} redirects to {target}", start)
                        url = target
                        continue
                    body = self._body(resp, url, max_bytes) if resp.status_code < 400 else b""
                    return url, resp.status_code, resp.headers, body
            except requests.RequestException as exc:
                raise IngestError("fetch_failed", f"Could not fetch {url}: {type(exc).__name__}: {exc}",
                                  url=start) from exc
        raise IngestError("fetch_failed", f"{start} redirects more than {MAX_REDIRECTS} times", url=start)

    def _approve(self, url: str, what: str, start: str) -> None:
        """Every hop passes the guard, and its approved address is the one the connection will use."""
        reason, addresses = guard_verdict(self.allow_url, url)
        if reason:
            raise IngestError("blocked", f"{what}: {reason}", url=start)
        host = urlsplit(url).hostname
        if addresses and self.pins is not None and host:
            self.pins.pin(host, addresses[0])

    def _body(self, resp: requests.Response, url: str, max_bytes: int) -> bytes:
        # A total deadline too: the per-read timeout alone lets a server drip bytes forever.
        deadline, chunks, total = time.monotonic() + 4 * self.timeout, [], 0
        for chunk in resp.iter_content(64 * 1024):
            total += len(chunk)
            if total > max_bytes:
                raise IngestError("too_large", f"{url} is larger than {max_bytes} bytes", url=url)
            if time.monotonic() > deadline:
                raise IngestError("fetch_failed", f"{url} took longer than {4 * self.timeout:g}s", url=url)
            chunks.append(chunk)
        return b"".join(chunks)

    def _wait_turn(self, url: str) -> None:
        """Sleep until this host's next free slot, so one host sees at most one request per delay."""
        host = urlsplit(url).netloc
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(host, 0.0))
            self._next_slot[host] = slot + self._delays.get(host, self.delay)
        if slot > now:
            time.sleep(slot - now)

    def _load_robots(self, robots_url: str) -> RobotFileParser | None:
        try:
            _, status, _, body = self.get(robots_url, ROBOTS_MAX_BYTES)
        except IngestError:
            return None  # the host is unreachable: the page fetch itself reports the real error
        if 400 <= status < 500:
            return None  # RFC 9309: a missing (or forbidden) robots.txt allows everything
        parser = RobotFileParser(robots_url)
        if status >= 500:
            parser.disallow_all = True  # RFC 9309: a server error means assume everything is disallowed
            return parser
        parser.parse(body.decode("utf-8", "replace").splitlines())
        delay = parser.crawl_delay(self.user_agent)
        if delay is not None:
            self._delays[urlsplit(robots_url).netloc] = min(float(delay), MAX_CRAWL_DELAY)
        return parser
