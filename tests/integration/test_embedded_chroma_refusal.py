"""Several web processes on the embedded Chroma are refused however they are started: bare gunicorn here
(the README's old Production command), `magnet serve --workers N` by its own check."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.integration
def test_bare_gunicorn_with_several_workers_on_the_embedded_chroma_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNET_")}
    env.update(MAGNET_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    done = subprocess.run([str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{_free_port()}", "--workers", "2", "wsgi:app"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output  # the whole server stops: a worker failed to boot
    assert "Refusing to start: the embedded Chroma" in output and "MAGNET_CHROMA_URL" in output


@pytest.mark.integration
def test_magnet_serve_with_several_workers_on_the_embedded_chroma_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNET_")}
    env.update(MAGNET_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run([str(BIN / "magnet"), "serve", "--port", str(_free_port()), "--workers", "2"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "MAGNET_CHROMA_URL" in done.stdout + done.stderr
