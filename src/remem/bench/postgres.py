"""The Postgres a benchmark runs against: ``REMEM_DATABASE_URL`` if set, else a throw-away local server.

:func:`bench_postgres` yields a :class:`BenchPostgres` whose :meth:`~BenchPostgres.fresh_database` creates an
empty database per measurement (dropped when the benchmark ends), so runs never see each other's rows. Without
``REMEM_DATABASE_URL`` it starts PostgreSQL 16 + pgvector from the ``pgserver`` wheel
(:class:`~remem.testing.postgres.LocalPostgres`) in the benchmark's work directory, with durable settings
(fsync on), and can report the resident memory of its processes (:meth:`~BenchPostgres.server_pss_mb`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigurationError, StoreError


class BenchPostgres:
    """A Postgres server on which the benchmark may create databases (``CREATEDB`` needed for a given URL)."""

    def __init__(self, url: str, *, local_pid_file: Path | None = None) -> None:
        self.url = url
        self.local = local_pid_file is not None
        self._pid_file = local_pid_file
        self._created: list[str] = []

    def fresh_database(self) -> str:
        """Create an empty database; returns its URL."""
        import psycopg

        name = f"remem_bench_{uuid.uuid4().hex[:10]}"
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
        except psycopg.Error as exc:
            raise StoreError(f"cannot create a benchmark database on the server: {exc}") from exc
        self._created.append(name)
        base, _, _ = self.url.rpartition("/")
        query = self.url.partition("?")[2]
        return f"{base}/{name}" + (f"?{query}" if query else "")

    def drop_all(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in self._created:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self._created.clear()

    def server_pss_mb(self) -> float | None:
        """Proportional set size (shared pages split between processes) of the local server's processes, in
        MiB; ``None`` for a server given by URL (not ours to measure)."""
        if self._pid_file is None or not self._pid_file.exists():
            return None
        import psutil

        try:
            main = psutil.Process(int(self._pid_file.read_text().split()[0]))
            total = 0
            for proc in [main, *main.children(recursive=True)]:
                try:
                    total += proc.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        except (psutil.Error, ValueError):
            return None
        return total / 2**20


@contextmanager
def bench_postgres(workdir: Path) -> Iterator[BenchPostgres]:
    """``REMEM_DATABASE_URL`` as the server, or a local one under ``workdir`` (stopped and removed after)."""
    url = os.environ.get("REMEM_DATABASE_URL")
    if url:
        server = BenchPostgres(url)
        try:
            yield server
        finally:
            server.drop_all()
        return
    from ..testing.postgres import LocalPostgres

    try:
        local = LocalPostgres(workdir / "postgres", fast=False)
    except ConfigurationError as exc:
        raise ConfigurationError(f"the pgvector benchmark needs REMEM_DATABASE_URL or the pgserver package "
                                 f"(pip install pgserver): {exc}") from exc
    server = BenchPostgres(local.start(), local_pid_file=local.data / "postmaster.pid")
    try:
        yield server
    finally:
        local.remove()
