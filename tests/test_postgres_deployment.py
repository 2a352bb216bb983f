"""The Postgres deployment: what every process sharing one database must agree on, and many workers on it."""

from __future__ import annotations

import pytest

from remem import ConfigurationError, Memory


def test_shared_database_refuses_another_embedder_or_store(postgres_url, tmp_path):
    with Memory(tmp_path / "a", embedder="fake", database_url=postgres_url) as m:
        m.add("hello", user_id="u")
    with pytest.raises(ConfigurationError, match="holds vectors of embedder 'fake:64'"):
        Memory(tmp_path / "b", embedder="fake:32", database_url=postgres_url)
    with pytest.raises(ConfigurationError, match="same vector store"):
        Memory(tmp_path / "c", embedder="fake", database_url=postgres_url)
    with Memory(tmp_path / "a", embedder="fake", database_url=postgres_url) as m:
        assert m.list(user_id="u").total == 1


def test_database_down_fails_the_write_with_a_typed_error_and_a_retry_is_safe(tmp_path):
    """History in Postgres, vectors elsewhere (the Qdrant-cluster shape; the embedded store stands in for Qdrant):
    with the database down, a write raises StoreError (REST: 503), neither the store nor the history holds it,
    reads of the store still work, and once the database is back a retry writes it exactly once."""
    import os
    import tempfile

    from remem import StoreError
    from remem.testing.postgres import LocalPostgres

    directory = tempfile.mkdtemp(prefix="remem-test-pg-down-")
    os.chmod(directory, 0o755)
    pg = LocalPostgres(directory)
    server = pg.start()
    try:
        with Memory(tmp_path / "m", embedder="fake", database_url=server) as m:
            m.add("Alice likes green tea", user_id="alice")
            pg.stop()
            with pytest.raises(StoreError):
                m.add("Alice moved to Lisbon", user_id="alice")
            assert [h.record.text for h in m.search("Lisbon", user_id="alice", mode="bm25")] == []
            pg.start()
            [event] = m.add("Alice moved to Lisbon", user_id="alice").events
            assert event.event == "ADD"
            [again] = m.add("Alice moved to Lisbon", user_id="alice").events
            assert again.event == "NOOP" and again.memory_id == event.memory_id
            assert sorted(r.text for r in m.list(user_id="alice").items) == ["Alice likes green tea",
                                                                                "Alice moved to Lisbon"]
            assert len(m.history(event.memory_id, user_id="alice")) == 1
            assert m.doctor().ok
    finally:
        pg.remove()


def test_a_refused_open_leaves_no_embedder_marker_in_the_home(postgres_url, tmp_path):
    """A process refused by the shared database (another embedder) must not record its embedder in its home:
    the next open with the right embedder works."""
    with Memory(tmp_path / "a", embedder="fake", database_url=postgres_url, store="pgvector") as m:
        m.add("hello", user_id="u")
    with pytest.raises(ConfigurationError, match="holds vectors of embedder"):
        Memory(tmp_path / "b", embedder="fake:32", database_url=postgres_url, store="pgvector")
    with Memory(tmp_path / "b", embedder="fake", database_url=postgres_url, store="pgvector") as m:
        assert m.list(user_id="u").total == 1


def test_database_urls_are_redacted_in_every_form():
    from remem.storage.postgres import redact

    assert redact("postgresql://u:Sup3r@h/db") == "postgresql://u:***@h/db"
    assert "Sup3r" not in redact("host=127.0.0.1 port=1 user=postgres password=Sup3rS3cret dbname=postgres")
    assert "Sup3r" not in redact("postgresql://h/db?sslmode=require&password=Sup3rS3cret&x=1")
    assert "Sup3r" not in redact("host=h password='Sup3r S3cret' dbname=d")
