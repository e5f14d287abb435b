"""Configuration, read only from MAGNET_* environment variables (documented in the README).

Nothing here does work at import time: `Config.from_env()` is called by `create_app`.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from app.config_auth import AuthSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data" / "runtime"
# Directory sources may read only under these roots; by default only the demo's sample guides.
DEFAULT_SOURCE_ROOTS = (PROJECT_ROOT / "data" / "samples",)
# Request threads that may wait on outbound calls at once (API tool tests, agent tools, LLM providers);
# well below `magnet serve`'s 8 threads, so health and other requests always find a free thread.
DEFAULT_OUTBOUND_CONCURRENCY = 4


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (an empty file is a valid SQLite database)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _env_paths(name: str, default: tuple[Path, ...]) -> list[Path]:
    raw = _env(name)
    if raw is None:
        return list(default)
    paths = [Path(item.strip()).expanduser() for item in raw.split(",") if item.strip()]
    relative = [str(p) for p in paths if not p.is_absolute()]
    if relative:
        raise ValueError(f"{name} must list absolute paths, got {', '.join(relative)}")
    return paths


def _env_seconds(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"{name} must be more than 0 seconds, got {raw!r}")
    return value


@dataclass
class Config:
    """Every setting the service reads. Tests build one directly instead of touching the environment."""

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None  # default: SQLite file in data_dir
    secret_key: str | None = None  # default: generated once into data_dir/secret_key
    chroma_url: str | None = None  # default: embedded Chroma in data_dir/chroma
    redis_url: str | None = None  # default: SQLite-backed job queue in data_dir
    max_json_bytes: int = 1024 * 1024
    max_upload_bytes: int = 50 * 1024 * 1024
    outbound_allowlist: list[str] = field(default_factory=list)
    outbound_concurrency: int = DEFAULT_OUTBOUND_CONCURRENCY
    source_roots: list[Path] = field(default_factory=lambda: list(DEFAULT_SOURCE_ROOTS))
    imports_dir: Path | None = None  # default: beside the data dir, "<data dir>-imports"
    log_level: str = "INFO"
    testing: bool = False
    # A running sync or evaluation whose heartbeat is older than this is reaped as "worker lost".
    run_stale_seconds: float = 120
    # Every call to a shared service is bounded, so a service that is down or frozen answers 503, not a hang.
    chroma_timeout_seconds: float = 5
    redis_timeout_seconds: float = 5
    db_connect_timeout_seconds: float = 5
    db_statement_timeout_seconds: float = 60  # PostgreSQL only
    auth: AuthSettings = field(default_factory=AuthSettings)  # users and sign-in (app/config_auth.py)

    @classmethod
    def from_env(cls) -> Config:
        data_dir = Path(_env("MAGNET_DATA_DIR", str(DEFAULT_DATA_DIR))).expanduser().resolve()
        allow = _env("MAGNET_OUTBOUND_ALLOWLIST", "") or ""
        return cls(
            data_dir=data_dir,
            database_url=_env("MAGNET_DATABASE_URL"),
            secret_key=_env("MAGNET_SECRET_KEY"),
            chroma_url=_env("MAGNET_CHROMA_URL"),
            redis_url=_env("MAGNET_REDIS_URL"),
            max_json_bytes=_env_int("MAGNET_MAX_JSON_BYTES", 1024 * 1024),
            max_upload_bytes=_env_int("MAGNET_MAX_UPLOAD_BYTES", 50 * 1024 * 1024),
            outbound_allowlist=[item.strip() for item in allow.split(",") if item.strip()],
            outbound_concurrency=_env_int("MAGNET_OUTBOUND_CONCURRENCY", DEFAULT_OUTBOUND_CONCURRENCY),
            source_roots=_env_paths("MAGNET_SOURCE_ROOTS", DEFAULT_SOURCE_ROOTS),
            imports_dir=_env_paths("MAGNET_IMPORTS_DIR", ())[0] if _env("MAGNET_IMPORTS_DIR") else None,
            log_level=_env("MAGNET_LOG_LEVEL", "INFO") or "INFO",
            run_stale_seconds=_env_seconds("MAGNET_RUN_STALE_SECONDS", 120),
            chroma_timeout_seconds=_env_seconds("MAGNET_CHROMA_TIMEOUT_SECONDS", 5),
            redis_timeout_seconds=_env_seconds("MAGNET_REDIS_TIMEOUT_SECONDS", 5),
            db_connect_timeout_seconds=_env_seconds("MAGNET_DB_CONNECT_TIMEOUT_SECONDS", 5),
            db_statement_timeout_seconds=_env_seconds("MAGNET_DB_STATEMENT_TIMEOUT_SECONDS", 60),
            auth=AuthSettings.from_env(),
        )

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'magnet.db'}"

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, when the database is SQLite on a file."""
        url = self.sqlalchemy_url
        if not url.startswith("sqlite:///") or url.endswith(":memory:"):
            return None
        return Path(url.removeprefix("sqlite:///").split("?", 1)[0])

    @property
    def imported_corpora_dir(self) -> Path:
        """Where `magnet eval import-beir` writes corpora: a source root of its own, outside the data dir
        (which no source may read) and holding only what Magnet wrote there."""
        return self.imports_dir or self.data_dir.with_name(self.data_dir.name + "-imports")

    def source_guard(self):
        """The source-root rules: the configured roots, and the data dir (and an SQLite file kept elsewhere),
        which no source ever reads."""
        from knowledge.connectors.roots import SourceRoots

        protected = [self.data_dir] + ([self.sqlite_path] if self.sqlite_path else [])
        return SourceRoots.of([*self.source_roots, self.imported_corpora_dir], protected=protected)

    def secure_data_dir(self) -> None:
        """Data dir 0700 and the files that hold data or secrets 0600, made so before anything writes them
        (SQLite gives its -wal/-shm files the database file's mode). Also tightens an older install."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        private = [self.data_dir / name for name in ("secret_key", "admin-key.txt", "embedding-cache.db")]
        if self.sqlite_path is not None:
            private += [self.sqlite_path, Path(f"{self.sqlite_path}-wal"), Path(f"{self.sqlite_path}-shm")]
            _create_private(self.sqlite_path)
        if not self.redis_url:
            private.append(self.data_dir / "jobs.db")
            _create_private(self.data_dir / "jobs.db")
        for path in private:
            if path.exists():
                os.chmod(path, 0o600)

    def resolved_secret_key(self) -> str:
        """The secret that encrypts provider keys; generated once and kept in the data dir if unset."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            import secrets

            self.data_dir.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two workers starting together must not write two different secrets.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(48))
            except FileExistsError:
                pass
        return path.read_text().strip()
