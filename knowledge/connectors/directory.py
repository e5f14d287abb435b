"""Directory connector: the files under a local folder, filtered by include/exclude globs.

Globs use ``PurePosixPath.full_match`` semantics on the POSIX path relative to the root: ``*`` and ``?``
stay inside one path segment and a ``**`` segment matches any number of segments, zero included, so
``docs/**/*.md`` matches ``docs/a.md`` and ``docs/x/y/a.md`` while ``*.md`` matches only top-level files.
"""
from __future__ import annotations

import logging
import mimetypes
import os
import re
import stat
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from knowledge.connectors.roots import SourceRoots
from knowledge.loaders import supported_extensions
from knowledge.types import IngestError, SourceItem

log = logging.getLogger(__name__)

# Version-control metadata is never content, whatever include_hidden says.
_ALWAYS_SKIPPED = frozenset({".git", ".hg", ".svn"})
_SUPPORTED = frozenset(supported_extensions())


def _segment_regex(segment: str) -> str:
    """Regex for one glob segment; no wildcard can cross a '/'."""
    out, i, n = [], 0, len(segment)
    while i < n:
        ch = segment[i]
        if ch == "*":
            out.append("[^/]*")
            while i + 1 < n and segment[i + 1] == "*":
                i += 1
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = i + 1
            if j < n and segment[j] in "!^":
                j += 1
            if j < n and segment[j] == "]":  # a ']' first in the class is a literal
                j += 1
            while j < n and segment[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(ch))  # unclosed '[' is a literal, as in fnmatch
            else:
                body = segment[i + 1:j].replace("\\", "\\\\")
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append(f"(?!/)[{body}]")
                i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def compile_glob(pattern: str, setting: str = "include") -> re.Pattern[str]:
    """Compile a relative glob to a regex for ``fullmatch``; ValueError naming ``setting`` if it is unsafe."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"{setting}: glob patterns must be non-empty strings, got {pattern!r}")
    if pattern.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", pattern):
        raise ValueError(f"{setting}: pattern {pattern!r} must be relative to the root, not absolute")
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{setting}: pattern {pattern!r} must not contain '..'")
    if not parts:
        raise ValueError(f"{setting}: pattern {pattern!r} matches nothing")
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(part) + ("" if last else "/")
    return re.compile(regex, re.DOTALL)


def _patterns(value: Iterable[str] | str | None, setting: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # a lone pattern, not a list of one-character patterns
        value = [value]
    try:
        return tuple(value)
    except TypeError:
        raise ValueError(f"{setting}: expected a list of glob patterns, got {value!r}") from None


def _refused(rel: str, reason: str):
    """The read of a file that is listed (so the sync reports it) but must never be read."""
    def read() -> bytes:
        raise IngestError("outside_root", f"{rel} was not read: {reason}", path=rel)

    return read


def _reader(path: Path, rel: str):
    def read() -> bytes:
        try:
            # O_NOFOLLOW: a file swapped for a symlink after listing must not be read through the link.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise IngestError("fetch_failed", f"Could not read {rel}: {exc.strerror or exc}", path=rel) from exc

    return read


class DirectoryConnector:
    """Lists the files under ``path`` in sorted, deterministic order; ``external_id`` is the relative path.

    Hidden files and directories (``.git``, ``.env``) are skipped unless ``include_hidden``; files whose
    extension has no loader are skipped (and counted in ``skipped``) unless ``only_supported`` is False.
    Symlinks are skipped unless ``follow_symlinks``; one that leads outside the root (or into a protected
    folder) is never followed and is listed as an item whose read fails with ``outside_root``, so the sync
    reports it with the reason. ``roots`` (supplied by the app, not by a user) limits which folders may be
    read at all; messages then show paths relative to their root.
    """

    def __init__(self, path: str | os.PathLike, include: Iterable[str] | str = ("**/*",),
                 exclude: Iterable[str] | str = (), follow_symlinks: bool = False, max_files: int = 100_000,
                 include_hidden: bool = False, only_supported: bool = True,
                 roots: SourceRoots | None = None) -> None:
        if not isinstance(path, str | os.PathLike) or not str(path).strip():
            raise ValueError(f"path: expected a directory path, got {path!r}")
        self.root = Path(path).expanduser()
        self.roots = roots
        if roots is not None:
            roots.check(self.root)  # PathRefused (a ValueError) names the rule: a 422 when configured
        self.include = _patterns(include, "include")
        if not self.include:
            raise ValueError("include: list at least one glob pattern (for example '**/*')")
        self.exclude = _patterns(exclude, "exclude")
        self._include_re = [compile_glob(p, "include") for p in self.include]
        self._exclude_re = [compile_glob(p, "exclude") for p in self.exclude]
        # An exclude like "build/**" rules out the whole folder: do not even walk into it.
        self._prune_re = [compile_glob(p[:-3], "exclude") for p in self.exclude
                          if p.endswith("/**") and p[:-3].strip("/.")]
        for name, flag in (("follow_symlinks", follow_symlinks), ("include_hidden", include_hidden),
                           ("only_supported", only_supported)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name}: expected true or false, got {flag!r}")
        if isinstance(max_files, bool) or not isinstance(max_files, int) or max_files < 1:
            raise ValueError(f"max_files: expected a positive integer, got {max_files!r}")
        self.follow_symlinks = follow_symlinks
        self.include_hidden = include_hidden
        self.only_supported = only_supported
        self.max_files = max_files
        self.skipped = 0

    def matches(self, rel: str) -> bool:
        """Whether a relative POSIX path is selected by the include and exclude globs."""
        return (any(r.fullmatch(rel) for r in self._include_re)
                and not any(r.fullmatch(rel) for r in self._exclude_re))

    def run(self) -> Iterator[SourceItem]:
        """Stream the selected files; IngestError ``source_unreachable`` if the root cannot be listed.

        Raises IngestError ``too_many_files`` past ``max_files`` rather than truncating, because a
        silently shortened listing would look like deleted documents to the sync.
        """
        self.skipped = 0
        root = self._checked_root()
        if not root.is_dir():
            raise IngestError("source_unreachable", f"{self.shown} does not exist or is not a directory",
                              path=self.shown)
        count = 0
        root_stat = root.stat()
        # Protected folders are never walked into, even when one turns up inside a root later.
        visited = {(root_stat.st_dev, root_stat.st_ino)} | self._protected_keys()
        for rel, path, st in self._walk(root, root, "", visited):
            name = rel.rsplit("/", 1)[-1]
            ext = os.path.splitext(name)[1].lower()
            if not self.matches(rel):
                continue
            if self.only_supported and ext and ext not in _SUPPORTED:
                self.skipped += 1
                continue
            count += 1
            if count > self.max_files:
                raise IngestError("too_many_files", f"{self.shown} has more than max_files={self.max_files} "
                                  "matching files; narrow include/exclude or raise max_files",
                                  max_files=self.max_files)
            if st is None:
                yield SourceItem(external_id=rel, name=name, read=_refused(rel, "it is a symlink that leads "
                                 "outside the source root"), metadata={"path": rel})
                continue
            modified = datetime.fromtimestamp(st.st_mtime, UTC).isoformat().replace("+00:00", "Z")
            # What git and rsync trust to skip reading a file: any write changes the change time, which no
            # user can set back (unlike the modification time), and a replaced file has a new inode.
            stat = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
            yield SourceItem(external_id=rel, name=name, read=_reader(path, rel), size=st.st_size,
                             mime_type=mimetypes.guess_type(name)[0],
                             metadata={"path": rel, "modified_at": modified, "stat": stat})

    @property
    def shown(self) -> str:
        """The root as messages show it: relative to its source root when roots are known."""
        return self.roots.display(self.root) if self.roots is not None else str(self.root)

    def _checked_root(self) -> Path:
        if self.roots is None:
            return self.root.resolve()
        try:  # again at every run: the roots, or a symlink on the way, may have changed since configured
            return self.roots.check(self.root)
        except ValueError as exc:
            raise IngestError("source_unreachable", str(exc)) from None

    def _protected_keys(self) -> set[tuple[int, int]]:
        keys = set()
        for folder in self.roots.protected if self.roots is not None else ():
            try:
                st = folder.stat()
            except OSError:
                continue
            keys.add((st.st_dev, st.st_ino))
        return keys

    def _escapes(self, root: Path, target: Path) -> bool:
        return not target.is_relative_to(root) or (self.roots is not None and self.roots.is_protected(target))

    def _walk(self, root: Path, folder: Path, prefix: str,
              visited: set) -> Iterator[tuple[str, Path, os.stat_result | None]]:
        """(relative path, path, stat) of each file; stat is None for a symlink that leads out."""
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if not prefix:
                raise IngestError("source_unreachable", f"Cannot list {self.shown}: {exc.strerror or exc}",
                                  path=self.shown) from exc
            # One unreadable subfolder should not fail the whole source; its files are simply not listed.
            log.warning("skipping unreadable folder %s: %s", prefix, exc)
            return
        for entry in entries:
            if entry.name in _ALWAYS_SKIPPED or (not self.include_hidden and entry.name.startswith(".")):
                continue
            rel, path = prefix + entry.name, Path(entry.path)
            try:
                if entry.is_symlink():
                    target = path.resolve(strict=True)
                    if self._escapes(root, target):
                        log.info("not following symlink %s: it leads outside its source root", rel)
                        yield rel, path, None
                        continue
                    if not self.follow_symlinks:
                        continue
                    path, st = target, target.stat()
                else:
                    st = entry.stat(follow_symlinks=False)
            except (OSError, RuntimeError):  # broken link or a symlink loop
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in visited or any(r.fullmatch(rel) for r in self._prune_re):
                    continue  # visited: two links to one folder (or a loop) list it once
                visited.add(key)
                yield from self._walk(root, path, rel + "/", visited)
            elif stat.S_ISREG(st.st_mode):
                yield rel, path, st
