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
