"""Shared helpers for the server tests: a real uvicorn server on a free loopback port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from remem import Memory
from remem.server import ServerConfig, create_app
from remem.server.auth import KeyStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    url: str
    memory: Memory
    keys: KeyStore
    admin: str
    key_a: str  # tenant "acme"
    key_b: str  # tenant "beta"

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def running_server(home: Path, config: ServerConfig | None = None, lm: Any = None,
                   database_url: str | None = None) -> Iterator[Running]:
    """With ``database_url``: history, keys and the pgvector store in that Postgres database."""
    memory = Memory(home, embedder="fake", lm=lm, database_url=database_url,
                    store="pgvector" if database_url else None)
    keys = KeyStore.for_settings(memory.settings)
    admin = keys.create(role="admin").api_key
    key_a = keys.create(tenant="acme").api_key
    key_b = keys.create(tenant="beta").api_key
    app = create_app(memory, keys, config or ServerConfig(rate_limit=0))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield Running(f"http://127.0.0.1:{port}", memory, keys, admin, key_a, key_b)
    finally:
        server.should_exit = True
        thread.join(10)
        memory.close()
        keys.close()
