"""Web connector: crawls seed URLs and sitemaps politely and yields every fetched page as a SourceItem.

Polite means: robots.txt is honoured, at most ``concurrency`` requests run at once, and requests to one
host are spaced at least ``delay`` seconds apart (or the robots.txt Crawl-delay, capped). Pages are
yielded as they arrive, so memory holds the pages in flight, never the whole site.
"""
from __future__ import annotations

import gzip
import io
import mimetypes
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from bs4 import BeautifulSoup

from knowledge.connectors._fetch import PoliteFetcher, normalize_url, url_refusal
from knowledge.connectors.pinning import PinnedAdapter
from knowledge.types import IngestError, SourceItem

__all__ = ["WebConnector", "normalize_url", "url_refusal"]

_MAX_SITEMAPS = 50
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Not fetched nor listed: no loader reads audio, video or fonts, and images on web pages are logos and
# icons (OCR of every one would cost a second each for nothing); scans are added as files instead.
_BINARY_MEDIA = ("image/", "audio/", "video/", "font/")


def _name(url: str) -> str:
    parts = urlsplit(url)
    return unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or parts.hostname or url


def _links(body: bytes, base: str) -> list[str]:
    soup = BeautifulSoup(body, "html.parser")
    tag = soup.find("base", href=True)
    base = normalize_url(tag["href"], base) or base if tag else base
    links = (normalize_url(a["href"], base) for a in soup.find_all("a", href=True))
    return list(dict.fromkeys(link for link in links if link))  # dedupe, keep page order


@dataclass
class _Result:
    url: str
    depth: int
    seed: bool
    final_url: str = ""
    body: bytes | None = None
    headers: Any = field(default_factory=dict)  # requests' case-insensitive headers
    links: list[str] = field(default_factory=list)
    error: IngestError | None = None
    skipped: bool = False


class WebConnector:
    """Crawls ``urls`` (followed ``max_depth`` links deep) and the pages a ``sitemap`` lists.

    ``external_id`` is the normalised URL. Failures of one page (HTTP errors, ``allow_url`` refusals,
    robots.txt forbidding a seed) are items whose ``read()`` raises IngestError (``fetch_failed``,
    ``blocked``, ``robots_disallowed``, ``too_large``); if no seed and no sitemap works at all, ``run()``
    raises IngestError ``source_unreachable``.
    """

    def __init__(self, urls: Iterable[str] | str = (), sitemap: str | None = None, max_depth: int = 0,
                 max_pages: int = 200, same_host_only: bool = True, concurrency: int = 4,
                 timeout: float = 15, user_agent: str = "MagnetBot/0.1", delay: float = 0.2,
                 max_bytes: int = 50 * 1024 * 1024, allow_url: Callable[[str], Any] | None = None) -> None:
        urls = [urls] if isinstance(urls, str) else list(urls or ())
        self.urls = list(dict.fromkeys(self._url(u, "urls") for u in urls))
        self.sitemap = self._url(sitemap, "sitemap") if sitemap is not None else None
        if not self.urls and not self.sitemap:
            raise ValueError("urls: give at least one URL to start from, or a sitemap")
        for name, value, low, high in (("max_depth", max_depth, 0, 10), ("max_pages", max_pages, 1, 100_000),
                                       ("concurrency", concurrency, 1, 32), ("max_bytes", max_bytes, 1, None)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                raise ValueError(f"{name}: expected an integer from {low}" + (f" to {high}" if high else "")
                                 + f", got {value!r}")
        for name, value, low in (("timeout", timeout, 0.001), ("delay", delay, 0.0)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
                raise ValueError(f"{name}: expected a number of seconds >= {low}, got {value!r}")
        if not isinstance(same_host_only, bool):
            raise ValueError(f"same_host_only: expected true or false, got {same_host_only!r}")
        if not isinstance(user_agent, str) or not user_agent.strip():
            raise ValueError("user_agent: expected a non-empty string")
        if allow_url is not None and not callable(allow_url):
            raise ValueError("allow_url: expected a callable or None")
        self.max_depth, self.max_pages, self.max_bytes = max_depth, max_pages, max_bytes
        self.concurrency = concurrency
        self.timeout, self.delay, self.same_host_only = float(timeout), float(delay), same_host_only
        self.user_agent, self.allow_url = user_agent.strip(), allow_url

    @staticmethod
    def _url(value: Any, setting: str) -> str:
        url = normalize_url(value) if isinstance(value, str) else None
        if url is None:
            raise ValueError(f"{setting}: {value!r} is not an absolute http:// or https:// URL")
        return url

    def run(self) -> Iterator[SourceItem]:
        """Stream one item per page, seeds and sitemap entries first, then links breadth-first."""
        with requests.Session() as session:
            session.headers["User-Agent"] = self.user_agent
            session.trust_env = False  # a proxy from the environment would connect where the guard did not look
            pins = PinnedAdapter()
            session.mount("http://", pins)
            session.mount("https://", pins)
            self._http = PoliteFetcher(session, user_agent=self.user_agent, timeout=self.timeout,
                                       delay=self.delay, allow_url=self.allow_url, pins=pins)
            # The sitemap's failure is held like a failed seed: reported if anything else works, else fatal.
            held: list[SourceItem] = []
            entries: list[str] = []
            if self.sitemap:
                try:
                    entries = self._sitemap_entries()
                except IngestError as exc:
                    held.append(self._item(_Result(self.sitemap, 0, True, error=exc)))
            yield from self._crawl(entries, held)

    def _crawl(self, entries: list[str], held: list[SourceItem]) -> Iterator[SourceItem]:
        frontier = deque([(u, True) for u in self.urls] + [(u, False) for u in entries if u not in self.urls])
        seen = {u for u, _ in frontier}
        self._hosts = {urlsplit(u).netloc for u in seen | {self.sitemap or ""}}
        frontier = deque((u, 0, seed) for u, seed in frontier)
        seeds_left, working = len(self.urls), bool(entries)
        pending: deque = deque()
        started = 0
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="magnet-web")
        try:
            while frontier or pending:
                # Up to two pages per worker queued: workers stay busy while the oldest is yielded in order.
                while frontier and len(pending) < 2 * self.concurrency and started < self.max_pages:
                    pending.append(pool.submit(self._fetch, *frontier.popleft()))
                    started += 1
                if not pending:
                    break
                result = pending.popleft().result()
                if result.seed:
                    seeds_left -= 1
                    working = working or result.error is None
                if result.skipped or (result.final_url != result.url and result.final_url in seen):
                    started -= 1  # robots-forbidden or a redirect onto a page already listed
                    continue
                if result.final_url:
                    seen.add(result.final_url)
                for link in result.links:
                    if link not in seen and self._follow(link):
                        seen.add(link)
                        frontier.append((link, result.depth + 1, False))
                item = self._item(result)
                if not working:
                    held.append(item)
                    if seeds_left == 0:
                        break
                    continue
                yield from held
                held.clear()
                yield item
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if not working and held:
            reasons = "; ".join(str(i.metadata.get("error_message")) for i in held)
            raise IngestError("source_unreachable", f"No page of this source could be fetched: {reasons}")
        yield from held

    def _follow(self, link: str) -> bool:
        if self.same_host_only and urlsplit(link).netloc not in self._hosts:
            return False
        guessed = mimetypes.guess_type(urlsplit(link).path)[0] or ""
        return not guessed.startswith(_BINARY_MEDIA)

    def _item(self, r: _Result) -> SourceItem:
        if r.error is not None:
            err = r.error

            def fail() -> bytes:
                raise IngestError(err.code, err.message, **err.details)

            return SourceItem(r.url, _name(r.url), read=fail,
                              metadata={"url": r.url, "error": err.code, "error_message": err.message})
        body = r.body or b""
        ctype = r.headers.get("Content-Type", "")
        mime = ctype.split(";")[0].strip().lower() or mimetypes.guess_type(urlsplit(r.url).path)[0]
        meta = {"url": r.final_url, "depth": r.depth, "content_type": ctype,
                "last_modified": r.headers.get("Last-Modified"), "etag": r.headers.get("ETag")}
        return SourceItem(r.url, _name(r.url), read=lambda: body, size=len(body), mime_type=mime, metadata=meta)

    def _fetch(self, url: str, depth: int, seed: bool) -> _Result:
        """Worker: fetch one page (and its links when it is HTML and may be followed further)."""
        try:
            reason = url_refusal(self.allow_url, url)
            if reason:
                raise IngestError("blocked", f"{url} is blocked: {reason}", url=url)
            if not self._http.robots_allow(url):
                if not seed:  # only an explicitly requested page is worth reporting
                    return _Result(url, depth, seed, skipped=True)
                raise IngestError("robots_disallowed", f"robots.txt forbids crawling {url}", url=url)
            final, status, headers, body = self._http.get(url, self.max_bytes)
            if status >= 400:
                raise IngestError("fetch_failed", f"{url} answered HTTP {status}", url=url, status=status)
            ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype.startswith(_BINARY_MEDIA):
                return _Result(url, depth, seed, skipped=True)
            links = _links(body, final) if ctype in _HTML_TYPES and depth < self.max_depth else []
            return _Result(url, depth, seed, final, body, headers, links)
        except IngestError as exc:
            return _Result(url, depth, seed, error=exc)
        except Exception as exc:  # one odd page (a parser bug, say) must not end the whole crawl
            error = IngestError("fetch_failed", f"Could not process {url}: {type(exc).__name__}: {exc}", url=url)
            return _Result(url, depth, seed, error=error)

    def _sitemap_entries(self) -> list[str]:
        """Page URLs of the sitemap and of the sitemaps it nests (a sitemap index), at most max_pages."""
        todo, done, pages = deque([self.sitemap]), set(), {}
        while todo and len(pages) < self.max_pages and len(done) < _MAX_SITEMAPS:
            url = todo.popleft()
            if url in done:
                continue
            done.add(url)
            reason = url_refusal(self.allow_url, url)
            if reason:
                raise IngestError("blocked", f"The sitemap {url} is blocked: {reason}", url=url)
            _, status, _, body = self._http.get(url, self.max_bytes)
            if status >= 400:
                raise IngestError("fetch_failed", f"The sitemap {url} answered HTTP {status}", url=url)
            try:
                if body[:2] == b"\x1f\x8b":  # sitemap.xml.gz; read at most max_bytes of it (gzip bombs)
                    body = gzip.GzipFile(fileobj=io.BytesIO(body)).read(self.max_bytes)
                root = ET.fromstring(body)
            except (ET.ParseError, OSError, EOFError, ValueError) as exc:
                raise IngestError("fetch_failed", f"The sitemap {url} is not valid XML: {exc}", url=url) from exc
            nested = root.tag.rsplit("}", 1)[-1] == "sitemapindex"
            for el in root.iter():
                loc = normalize_url(el.text or "") if el.tag.rsplit("}", 1)[-1] == "loc" else None
                if loc and nested:
                    todo.append(loc)
                elif loc:
                    pages.setdefault(loc, None)
        if not pages:
            raise IngestError("fetch_failed", f"The sitemap {self.sitemap} lists no pages", url=self.sitemap)
        return list(pages)[: self.max_pages]
