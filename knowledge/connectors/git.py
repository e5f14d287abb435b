"""Git connector: a shallow checkout of one branch of a repository, listed like a directory.

The git command-line tool does the transport work, run so that it cannot be turned against the server:
- only https://, http://, ssh:// (and ``user@host:path``) and absolute local paths; transport tricks like
  ``ext::sh -c ...``, ``file://`` and option injection are refused, and git itself is told the same
  (GIT_ALLOW_PROTOCOL, ``protocol.file.allow=never`` for remote sources);
- every network URL passes the app's outbound guard (``allow_url``) before git runs; the addresses the
  guard approved are pinned (``http.curloptResolve``, ``ssh -o HostName``) so a second DNS answer cannot
  differ, and redirects are not followed (``http.followRedirects=false``), so no hop escapes the check;
- no prompts, no credential helpers, no user or system git config (``insteadOf`` rewrites, proxies), and
  a timeout that kills the whole process group;
- a local path must lie under the app's source roots (``roots``), checked again at every sync;
- failures of network sources are told in a few fixed sentences: git's own words would tell an open port
  from a closed one, or show server paths (they go to the server log instead).
"""
from __future__ import annotations

import logging
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

from knowledge.connectors._fetch import guard_verdict
from knowledge.connectors.directory import DirectoryConnector
from knowledge.connectors.roots import SourceRoots
from knowledge.types import IngestError, SourceItem

log = logging.getLogger(__name__)

_SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9_][\w.+-]*)@(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>\S+)$")
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]*$")
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
# With http.followRedirects=false git fails on a 30x answer ("The requested URL returned error: 302").
_REDIRECTED = re.compile(r"returned error: 30\d|redirect", re.IGNORECASE)
_MISSING_BRANCH = re.compile(r"(?:Remote branch|couldn't find remote ref) (?:refs/heads/)?(\S+)")
UNREACHABLE = ("the repository could not be fetched: it does not exist, is not reachable from this server, "
               "or needs credentials")
# Variables that would send git somewhere the guard did not check, or load config we did not write.
_DROPPED_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_SSH", "GIT_PROXY_COMMAND", "http_proxy",
                "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "GIT_CONFIG_PARAMETERS")


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


def transport_of(source: str) -> str:
    """'http', 'ssh' or 'local': how a checked ``url_or_path`` is reached."""
    if "://" in source:
        return "ssh" if urlsplit(source).scheme.lower() == "ssh" else "http"
    return "ssh" if _SCP_LIKE.match(source) else "local"


def network_url(source: str) -> str:
    """The URL the outbound guard judges: ``user@host:path`` is ``ssh://user@host/path``."""
    scp = _SCP_LIKE.match(source)
    return f"ssh://{scp['user']}@{scp['host']}/{scp['path'].lstrip('/')}" if scp else source


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

    ``allow_url(url)`` is the app's outbound guard for network sources: it refuses by returning False or
    raising, and may return the addresses it approved, which are then the only ones git connects to.
    """

    def __init__(self, url_or_path: str | os.PathLike, branch: str | None = None,
                 include: Iterable[str] | str = ("**/*",), exclude: Iterable[str] | str = (), *,
                 checkout_dir: str | os.PathLike, timeout: float = 300, max_files: int = 100_000,
                 allow_url: Callable[[str], Any] | None = None, roots: SourceRoots | None = None) -> None:
        self.source = _check_source(url_or_path)
        self.transport = transport_of(self.source)
        self.roots = roots if self.transport == "local" else None
        if self.roots is not None:
            self.roots.check(self.source, "url_or_path")  # PathRefused (ValueError): a 422 when configured
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

    @property
    def shown(self) -> str:
        """The source as messages show it: no credentials, and a local path relative to its root."""
        if self.transport == "local":
            return self.roots.display(self.source) if self.roots is not None else self.source
        return _redact(self.source)

    def run(self) -> Iterator[SourceItem]:
        """Clone or update the checkout, then stream its files; IngestError ``source_unreachable`` when
        the repository or branch cannot be fetched, ``blocked`` when the outbound guard refuses it."""
        settings = self._transport_settings()
        self._update_checkout(settings)
        commit, branch = self._git("rev-parse", "HEAD", "--abbrev-ref", "HEAD", what="git rev-parse").split()
        blobs = self._blob_shas()
        for item in self._lister.run():
            meta = {**item.metadata, "commit": commit, "branch": self.branch or branch,
                    "blob_sha": blobs.get(item.external_id)}
            yield replace(item, metadata=meta)

    # -- transports ------------------------------------------------------------------------------

    def _transport_settings(self) -> tuple[list[str], dict[str, str]]:
        """The ``-c`` options and environment that confine git to this source's checked transport."""
        if self.transport == "local":
            if self.roots is not None:
                try:  # the roots, or a symlink on the way, may have changed since the source was saved
                    self.roots.check(self.source, "url_or_path")
                except ValueError as exc:
                    raise IngestError("source_unreachable", str(exc)) from None
            if not Path(self.source).is_dir():
                raise IngestError("source_unreachable", f"{self.shown} does not exist or is not a folder")
            return [], {"GIT_ALLOW_PROTOCOL": "file"}
        url = network_url(self.source)
        addresses = self._approved_addresses(url)
        config = ["protocol.file.allow=never", "http.followRedirects=false", "http.lowSpeedLimit=1000",
                  "http.lowSpeedTime=60", "credential.helper=", "http.proxy="]
        parts = urlsplit(url)
        if self.transport == "http":
            if addresses:
                port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
                pinned = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
                config.append(f"http.curloptResolve={parts.hostname}:{port}:{pinned}")
            return config, {"GIT_ALLOW_PROTOCOL": "https:http"}
        # BatchMode: ssh fails rather than asking for a password or a host-key confirmation. HostName pins
        # the approved address; HostKeyAlias keeps known_hosts keyed by the name the user gave.
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(self.timeout))}",
               "-o", "ProxyCommand=none", "-o", "ProxyJump=none"]
        if addresses:
            ssh += ["-o", f"HostName={addresses[0]}", "-o", f"HostKeyAlias={parts.hostname}"]
        return config, {"GIT_ALLOW_PROTOCOL": "ssh", "GIT_SSH_COMMAND": " ".join(ssh)}

    def _approved_addresses(self, url: str) -> list[str]:
        reason, addresses = guard_verdict(self.allow_url, url)
        if reason:
            raise IngestError("blocked", f"{self.shown} is blocked: {reason}")
        return addresses

    # -- the checkout ----------------------------------------------------------------------------

    def _update_checkout(self, settings: tuple[list[str], dict[str, str]]) -> None:
        target = self.checkout_dir
        if (target / ".git").is_dir():
            origin = self._git("config", "--get", "remote.origin.url", what="git config", check=False).strip()
            if origin == self.source:
                self._git("fetch", "--depth", "1", "--no-tags", "origin", self.branch or "HEAD",
                          what="git fetch", settings=settings)
                self._git("reset", "--hard", "FETCH_HEAD", what="git reset")
                self._git("clean", "-ffdx", what="git clean")  # stray files would be listed as content
                return
            shutil.rmtree(target)  # the source now names another repository: start over
        elif target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise IngestError("source_unreachable", "the source's checkout folder holds something that is not "
                              "a git checkout; refusing to overwrite it")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Clone beside the target and rename, so a failed clone never leaves a half checkout behind.
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-clone-", dir=target.parent))
        try:
            branch = ["--branch", self.branch] if self.branch else []
            self._git("clone", "--depth", "1", "--no-tags", *branch, "--", self.source, str(tmp),
                      what="git clone", cwd=target.parent, settings=settings)
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

    def _git(self, *args: str, what: str, cwd: Path | None = None, check: bool = True,
             settings: tuple[list[str], dict[str, str]] = ([], {})) -> str:
        config, extra_env = settings
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C",
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
               "GIT_ALLOW_PROTOCOL": "none", "GIT_SSH_COMMAND": "false", **extra_env}
        for inherited in _DROPPED_ENV:  # e.g. GIT_DIR set when run from a hook, or a proxy
            env.pop(inherited, None)
        options = [item for pair in config for item in ("-c", pair)]
        try:
            proc = subprocess.Popen(["git", *options, *args], cwd=cwd or self.checkout_dir, env=env, text=True,
                                    encoding="utf-8", errors="surrogateescape",
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)  # its own group, so a timeout kills ssh too
        except FileNotFoundError as exc:
            raise IngestError("source_unreachable", "Could not run git: is it installed on the server?") from exc
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise IngestError("source_unreachable", f"{what} of {self.shown} timed out after "
                              f"{self.timeout:g}s") from None
        if check and proc.returncode != 0:
            stderr = _redact(" ".join(err.split()))[-500:] or f"exit status {proc.returncode}"
            log.warning("%s of %s failed: %s", what, self.shown, stderr)
            raise IngestError("source_unreachable", f"{what} of {self.shown} failed: {self._told(stderr)}")
        return out

    def _told(self, stderr: str) -> str:
        """What a user is told of a git failure: a fixed sentence, never git's words about the network."""
        missing = _MISSING_BRANCH.search(stderr)
        if missing:
            return f"the branch {missing.group(1)} was not found in the repository"
        if _REDIRECTED.search(stderr):
            return ("the server answered with a redirect, which git sources do not follow; "
                    "use the repository's final URL")
        if self.transport == "local":
            return "the folder is not a git repository this server can read"
        return UNREACHABLE
