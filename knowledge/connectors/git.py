"""Git connector: a shallow checkout of one branch of a repository, listed like a directory.

The git command-line tool does the transport work. It is run so that it can never hang waiting for a
password, with a timeout that kills the whole process group, and only over the transports a user may
name here: https://, http://, ssh://, user@host:path and absolute local paths. Transport tricks like
``ext::sh -c ...`` (which would run commands on this server) and option injection are refused.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from knowledge.connectors._fetch import url_refusal
from knowledge.connectors.directory import DirectoryConnector
from knowledge.types import IngestError, SourceItem

_SCP_LIKE = re.compile(r"^[A-Za-z0-9_][\w.+-]*@[A-Za-z0-9][A-Za-z0-9.-]*:\S+$")
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]*$")
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def _redact(text: str) -> str:
    """Hide ``user:token@`` in URLs so tokens never reach error messages or logs."""
    return _CREDENTIALS.sub("***@", text)


def _check_source(value: Any) -> str:
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise ValueError(f"url_or_path: expected a repository URL or path, got {value!r}")
    text = str(value).strip()
    if text.startswith("-") or any(c in text for c in "\0\r\n"):
        raise ValueError(f"url_or_path: {_redact(text)!r} is not a repository URL or path")
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("https", "http", "ssh"):
            raise ValueError(f"url_or_path: the {parts.scheme!r} transport is not allowed; use https://, "
                             "http://, ssh://, user@host:path or an absolute local path")
        if not parts.hostname or parts.hostname.startswith("-"):
            raise ValueError(f"url_or_path: {_redact(text)!r} has no valid host")
        return text
    if "::" in text:  # git's <transport>::<address> syntax (ext::, fd::, file::...)
        raise ValueError(f"url_or_path: transport syntax like 'ext::' is not allowed: {text!r}")
    if _SCP_LIKE.match(text):
        return text
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise ValueError(f"url_or_path: {text!r} is neither a URL, user@host:path nor an absolute path")
    return str(path)


def _check_branch(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if (not isinstance(value, str) or not _BRANCH.match(value) or ".." in value
            or value.endswith(("/", ".", ".lock"))):
        raise ValueError(f"branch: {value!r} is not a valid branch name")
    return value


class GitConnector:
    """Clones ``url_or_path`` (``branch``, or the remote's default) into ``checkout_dir`` and lists its files.

    Later syncs fetch and hard-reset the same checkout, so changed files are re-read and deleted files
    disappear from the listing. Items are those of a DirectoryConnector over the checkout, with
    ``metadata`` adding ``commit`` (the checked-out sha), ``branch`` and ``blob_sha`` (git's hash of the
    file, equal across syncs exactly when the content is).
    """

    def __init__(self, url_or_path: str | os.PathLike, branch: str | None = None,
                 include: Iterable[str] | str = ("**/*",), exclude: Iterable[str] | str = (), *,
                 checkout_dir: str | os.PathLike, timeout: float = 300, max_files: int = 100_000,
                 allow_url: Callable[[str], Any] | None = None) -> None:
        self.source = _check_source(url_or_path)
        self.branch = _check_branch(branch)
        if not isinstance(checkout_dir, str | os.PathLike) or not str(checkout_dir).strip():
            raise ValueError(f"checkout_dir: expected a folder path, got {checkout_dir!r}")
        self.checkout_dir = Path(checkout_dir).expanduser()
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
        if allow_url is not None and not callable(allow_url):
            raise ValueError("allow_url: expected a callable or None")
        self.timeout, self.allow_url = float(timeout), allow_url
        # Built now so that bad globs fail when the source is configured, not at its first sync.
        self._lister = DirectoryConnector(self.checkout_dir, include, exclude, max_files=max_files)

    def run(self) -> Iterator[SourceItem]:
        """Clone or update the checkout, then stream its files; IngestError ``source_unreachable`` when
        the repository or branch cannot be fetched (the message carries git's own words)."""
        scheme = urlsplit(self.source).scheme.lower() if "://" in self.source else ""
        if scheme in ("http", "https"):
            reason = url_refusal(self.allow_url, self.source)
            if reason:
                raise IngestError("source_unreachable", f"{_redact(self.source)} is blocked: {reason}")
        self._update_checkout()
        commit, branch = self._git("rev-parse", "HEAD", "--abbrev-ref", "HEAD", what="git rev-parse").split()
        blobs = self._blob_shas()
        for item in self._lister.run():
            meta = {**item.metadata, "commit": commit, "branch": self.branch or branch,
                    "blob_sha": blobs.get(item.external_id)}
            yield replace(item, metadata=meta)

    def _update_checkout(self) -> None:
        target = self.checkout_dir
        if (target / ".git").is_dir():
            origin = self._git("config", "--get", "remote.origin.url", what="git config", check=False).strip()
            if origin == self.source:
                self._git("fetch", "--depth", "1", "--no-tags", "origin", self.branch or "HEAD", what="git fetch")
                self._git("reset", "--hard", "FETCH_HEAD", what="git reset")
                self._git("clean", "-ffdx", what="git clean")  # stray files would be listed as content
                return
            shutil.rmtree(target)  # the source now names another repository: start over
        elif target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise IngestError("source_unreachable", f"{target} exists and is not a git checkout; "
                              "refusing to overwrite it")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Clone beside the target and rename, so a failed clone never leaves a half checkout behind.
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-clone-", dir=target.parent))
        try:
            branch = ["--branch", self.branch] if self.branch else []
            self._git("clone", "--depth", "1", "--no-tags", *branch, "--", self.source, str(tmp),
                      what="git clone", cwd=target.parent)
            if target.exists():
                target.rmdir()
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _blob_shas(self) -> dict[str, str]:
        out = self._git("ls-files", "--stage", "-z", what="git ls-files")
        shas = {}
        for record in filter(None, out.split("\0")):
            info, _, path = record.partition("\t")
            shas[path] = info.split()[1]
        return shas

    def _git(self, *args: str, what: str, cwd: Path | None = None, check: bool = True) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
               "LC_ALL": "C", "GIT_ALLOW_PROTOCOL": "https:http:ssh:file"}
        for inherited in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):  # e.g. set when run from a hook
            env.pop(inherited, None)
        # BatchMode: ssh must fail rather than ask for a password or a host-key confirmation.
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        try:
            proc = subprocess.Popen(["git", *args], cwd=cwd or self.checkout_dir, env=env, text=True,
                                    encoding="utf-8", errors="surrogateescape",
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)  # its own group, so a timeout kills ssh too
        except FileNotFoundError as exc:
            raise IngestError("source_unreachable", f"Could not run git (is it installed?): {exc}") from exc
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise IngestError("source_unreachable", f"{what} of {_redact(self.source)} timed out after "
                              f"{self.timeout:g}s") from None
        if check and proc.returncode != 0:
            stderr = _redact(" ".join(err.split()))[-500:] or f"exit status {proc.returncode}"
            raise IngestError("source_unreachable", f"{what} of {_redact(self.source)} failed: {stderr}",
                              stderr=stderr)
        return out
