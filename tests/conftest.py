"""Shared fixtures: real embedded parts, shipped fakes; no mocks of remem's internals."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Test data directories live on a RAM disk when there is a roomy one: the embedded store fsyncs each write
# (about 0.1 s on a busy disk), and tests need no power-loss durability (a killed process keeps the page cache).
# A small /dev/shm (a container's default is 64 MiB) is never used: the store memory-maps its files, and a full
# tmpfs turns a write into SIGBUS. REMEM_TEST_TMP=disk keeps the system default.
_SHM_MIN_FREE = 8 * 2**30


def _roomy_ram_disk(path: str = "/dev/shm") -> bool:
    if not os.access(path, os.W_OK):
        return False
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize >= _SHM_MIN_FREE


if os.environ.get("REMEM_TEST_TMP") != "disk" and _roomy_ram_disk():
    import tempfile

    tempfile.tempdir = "/dev/shm"

from remem import Memory


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever touches ~/.remem or inherits REMEM_* settings from the developer's shell."""
    for var in list(os.environ):
        if var.startswith("REMEM_") and var != "REMEM_TEST_LM":
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REMEM_HOME", str(tmp_path / "home"))


@pytest.fixture
def fake_memory(tmp_path: Path) -> Iterator[Memory]:
    """Edge store + deterministic fake embedder: fast, real store."""
    with Memory(tmp_path / "fake", embedder="fake") as m:
        yield m


@pytest.fixture
def local_memory(tmp_path: Path) -> Iterator[Memory]:
    """Edge store + the real packaged ONNX embedder."""
    with Memory(tmp_path / "local") as m:
        yield m


# -- Postgres (real server from the pgserver wheel, on a loopback port) ----------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL 16 + pgvector server for the session. If it cannot start, the tests that need it fail
    (they are never skipped): `make test` must run them. Its directory is outside pytest's private temp tree
    (mode 0700, which the ``pgserver`` system user running Postgres under root could not traverse)."""
    import shutil
    import tempfile

    from remem.testing.postgres import LocalPostgres

    directory = tempfile.mkdtemp(prefix="remem-test-pg-")
    os.chmod(directory, 0o755)
    pg = LocalPostgres(directory)
    url = pg.start()
    try:
        yield url
    finally:
        pg.stop()
        shutil.rmtree(directory, ignore_errors=True)


def create_database(server: str) -> str:
    """A fresh, empty database on ``server``; returns its URL."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + "/" + name


def drop_database(server: str, url: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server (dropped afterwards)."""
    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """``None`` (history, queue and keys in SQLite under the home) or a fresh Postgres database's URL."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else None  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgres", "pgvector"])
def backend_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    """Fake embedder, with history/queue on SQLite (edge store), on Postgres (edge store) and on Postgres with
    the pgvector store in the same database (congruence)."""
    url = request.getfixturevalue("postgres_url") if request.param != "sqlite" else None
    store = "pgvector" if request.param == "pgvector" else None
    with Memory(tmp_path / "backend", embedder="fake", database_url=url, store=store) as m:
        yield m
