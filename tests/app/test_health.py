"""/api/health checks dependencies for real (503 when one is down); /api/status reports counts."""
import re
import socket

from app import create_app
from app.config import Config


def test_health_is_open_and_checks_both_dependencies(client):
    res = client.get("/api/health")
    assert res.status_code == 200, res.json
    data = res.json["data"]
    assert data["status"] == "ok"
    assert data["database"]["status"] == "ok" and data["database"]["backend"] in ("sqlite", "postgresql")
    assert data["vector_db"]["status"] == "ok" and data["vector_db"]["backend"] == "chroma-embedded"
    assert data["version"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_health_is_503_when_the_database_is_unreachable(tmp_path):
    config = Config(data_dir=tmp_path, database_url=f"postgresql+psycopg://u:p@127.0.0.1:{_closed_port()}/x",
                    secret_key="k", testing=True)
    res = create_app(config).test_client().get("/api/health")
    assert res.status_code == 503
    assert res.json["data"]["database"]["status"] == "down"
    assert res.json["data"]["vector_db"]["status"] == "ok"


def test_health_is_503_when_the_vector_db_is_unreachable(tmp_path):
    config = Config(data_dir=tmp_path, chroma_url=f"http://127.0.0.1:{_closed_port()}", secret_key="k", testing=True)
    res = create_app(config).test_client().get("/api/health")
    assert res.status_code == 503
    assert res.json["data"]["vector_db"]["status"] == "down"
    assert res.json["data"]["database"]["status"] == "ok"


def test_status_counts_and_versions(api):
    from app.services.llm_models import ensure_builtin_models

    ensure_builtin_models()
    data = api.get("/api/status").json["data"]
    assert data["counts"]["models"] == 2
    assert data["counts"]["api_keys"] == 1
    assert re.fullmatch(r"\d{4}_\w+", data["database"]["migration"])
    assert data["job_queue"]["backend"] == "sqlite" and data["job_queue"]["pending"] == 0
    assert {"magnet", "python", "flask", "sqlalchemy", "chromadb"} <= set(data["versions"])
