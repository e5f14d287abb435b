"""The shared embedding cache's table (knowledge.embedders.sql_cache), on the app's metadata so that its
migrations make it. Magnet caches embeddings there when the database is PostgreSQL (app.services.engine);
on SQLite the table stays empty and the cache is a file in the data dir."""
from app.models.base import Base
from knowledge.embedders.sql_cache import embedding_cache_table

EMBEDDING_CACHE = embedding_cache_table(Base.metadata)
