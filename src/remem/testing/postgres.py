"""A throw-away PostgreSQL 16 + pgvector server on a loopback port, from the ``pgserver`` wheel's binaries.

``pgserver`` (PyPI) bundles PostgreSQL 16 and pgvector; its own launcher listens on a Unix socket only, so this
runs the bundled ``initdb``/``pg_ctl`` directly with ``-h 127.0.0.1 -p <free port>`` (and, as root, under the
``pgserver`` system user, as Postgres refuses to run as root). Used by the test suite (a session fixture), by
``remem bench store --store pgvector`` and by the multi-worker checks. Needs ``pip install pgserver``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from ..errors import ConfigurationError, StoreError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """``with LocalPostgres(tmpdir) as url: ...`` — initdb (first time), start, yield the URL, stop."""

    def __init__(self, directory: str | Path, *, port: int | None = None, fast: bool = True,
                 max_connections: int = 300) -> None:
        try:
            from pgserver._commands import POSTGRES_BIN_PATH
        except ImportError as exc:
            raise ConfigurationError("a local Postgres needs the pgserver package: pip install pgserver") from exc
        self.bin = Path(POSTGRES_BIN_PATH)
        self.directory = Path(directory).resolve()
        self.data = self.directory / "pgdata"
        self.port = port or free_port()
        self.fast = fast
        self.max_connections = max_connections
        self.user: str | None = None
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            self.user = "pgserver"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(self.bin, 0o555)
            ensure_folder_permissions(self.bin.parent / "lib", 0o444)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        try:
            subprocess.run([str(self.bin / args[0]), *args[1:]], check=True, capture_output=True, text=True,
                           timeout=timeout, user=self.user)
        except subprocess.CalledProcessError as exc:
            log = self.directory / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StoreError(f"{args[0]} failed: {exc.stderr.strip()[-500:]}\n{tail}") from exc

    def start(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            import pwd

            from pgserver.utils import ensure_prefix_permissions

            entry = pwd.getpwnam(self.user)
            ensure_prefix_permissions(self.directory)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=utf8")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory} -c max_connections={self.max_connections}"
        if self.fast:  # a test server: durability against OS crashes is not what is tested
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-w", "-o", options, "-l", str(self.directory / "postgres.log"),
                  "start")
        return self.url

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
