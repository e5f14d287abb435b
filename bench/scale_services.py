"""The scale bench's server variant: a fresh PostgreSQL database and a fresh Chroma server per size.

``bench/scale.py --database-url postgresql://... --chroma-server`` uses these so that each size starts
empty (no tables, postings or collections of the size before it) and so that the memory a Chroma server
holds for the index is measured in the server, where a deployment with ``MAGNET_CHROMA_URL`` keeps it.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text


def fresh_database(base_url: str, size: str) -> str:
    """``base_url`` with its database replaced by an empty ``magnet_scale_<size>`` (dropped if there)."""
    name = f"magnet_scale_{size}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


def postgres_disk(url: str) -> dict:
    """Bytes of the whole database and of the lexical index's tables (``lex_*``, with their indexes)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        database = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        lexical = conn.execute(text(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'lex%'")).scalar_one()
    engine.dispose()
    return {"database_bytes": int(database), "lexical_bytes": int(lexical)}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class ChromaServer:
    """``chroma run`` on 127.0.0.1 from this virtualenv, over its own folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> ChromaServer:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.path.mkdir(parents=True, exist_ok=True)
        log = open(self.path.parent / "chroma-server.log", "ab")  # noqa: SIM115 (the child keeps it open)
        chroma = Path(sys.executable).parent / "chroma"
        self.proc = subprocess.Popen([str(chroma), "run", "--path", str(self.path), "--host", "127.0.0.1",
                                      "--port", str(port)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited; see {self.path.parent / 'chroma-server.log'}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("chroma run did not listen within 120 s") from None
                time.sleep(0.5)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def memory_mb(self) -> dict:
        """The server's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
