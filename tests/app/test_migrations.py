"""The hand-reviewed migrations produce exactly the schema the models declare, and downgrade cleanly."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app import create_app
from app.config import Config
from app.extensions import db


def test_migrations_match_the_models(app):
    with db.engine.connect() as conn:
        # Tables of the lexical indexes (lex_*) are the knowledge engine's, made at run time.
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_name": lambda name, type_, parents: not (
                name if type_ == "table" else (parents or {}).get("table_name") or "").startswith("lex_")})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_upgrade_downgrade_upgrade_on_a_fresh_database(tmp_path):
    config = Config(data_dir=tmp_path, secret_key="k", testing=True)
    fresh = create_app(config)
    with fresh.app_context():
        upgrade()
        downgrade(revision="base")
        upgrade()
        names = set(db.inspect(db.engine).get_table_names())
        assert {"api_keys", "llm_models", "prompt_templates", "agents", "api_tools", "usage_records",
                "blobs", "source_uploads"} <= names
        assert db.session.execute(db.text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(db.text("PRAGMA foreign_keys")).scalar() == 1


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_shared_state_round_trip_keeps_bytes_exact(tmp_path, kind):
    """0006_shared_state: uploaded bytes (every byte value) come back exactly from bytea/BLOB; the
    migration downgrades to 0005 and upgrades again."""
    from app.models import KnowledgeSource
    from app.services.blobs import DatabaseBlobStore
    from app.services.uploads import store_upload
    from tests.conftest import POSTGRES_URL, _fresh_postgres_database

    url = _fresh_postgres_database(POSTGRES_URL) if kind == "postgresql" else None
    fresh = create_app(Config(data_dir=tmp_path, database_url=url, secret_key="k", testing=True))
    shared = {"blobs", "source_uploads", "embedding_cache"}
    with fresh.app_context():
        upgrade()
        source = KnowledgeSource(name="uploads", type="file", configuration={})
        db.session.add(source)
        db.session.commit()
        data = bytes(range(256)) * 1000 + b"\x00"
        digest = store_upload(source.id, "every-byte.bin", data)
        assert DatabaseBlobStore().read(digest) == data

        downgrade(revision="0005_conversations")
        assert not shared & set(db.inspect(db.engine).get_table_names())
        upgrade()
        assert shared <= set(db.inspect(db.engine).get_table_names())
        db.session.remove()
        db.engine.dispose()
