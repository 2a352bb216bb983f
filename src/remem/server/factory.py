"""The app factory of ``remem serve --workers N``: each worker process builds its own Memory and key store from
the environment (``REMEM_*``, set by the CLI) and serves the shared deployment (history, queue and keys in
Postgres; vectors in pgvector or a Qdrant server). See :func:`shared_deployment`."""

from __future__ import annotations

import json
import logging
import os
import sys

from fastapi import FastAPI

from ..config import Settings
from ..errors import ConfigurationError
from ..memory import Memory
from .app import ServerConfig, create_app
from .auth import KeyStore

CONFIG_VAR = "REMEM_SERVER_CONFIG"
#: The log level of ``remem serve --log-level`` (a worker process configures its own logging).
LOG_LEVEL_VAR = "REMEM_SERVER_LOG_LEVEL"


def shared_deployment(settings: Settings) -> bool:
    """Whether several processes can serve these settings: history in Postgres and vectors in a store that
    is not embedded in one process (pgvector, or a Qdrant server by URL)."""
    remote_qdrant = settings.store == "qdrant" and (settings.qdrant_url or "").startswith(("http://", "https://"))
    return bool(settings.database_url) and (settings.store.partition(":")[0] == "pgvector" or remote_qdrant)


def require_shared(settings: Settings, workers: int) -> None:
    if workers > 1 and not shared_deployment(settings):
        raise ConfigurationError(
            f"--workers {workers} needs a shared deployment: the embedded store allows one process per data "
            "directory. Set REMEM_DATABASE_URL=postgresql://… and REMEM_STORE=pgvector (or a Qdrant server with "
            "REMEM_QDRANT_URL=http://…), or run one worker."
        )


def create_from_env() -> FastAPI:
    """Build one worker's app (uvicorn calls this in every worker process)."""
    # A worker is a fresh process: log like `remem serve` does (one plain line per record on stderr, the access
    # log's JSON), before the MCP server would install its own (multi-line) handler on the root logger.
    level = os.environ.get(LOG_LEVEL_VAR, "info").upper()
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level, logging.INFO), format="%(message)s")
    memory = Memory()
    try:
        keys = KeyStore.for_settings(memory.settings)
        raw = os.environ.get(CONFIG_VAR)
        config = ServerConfig.model_validate(json.loads(raw)) if raw else ServerConfig.from_env()
    except BaseException:
        memory.close()
        raise
    return create_app(memory, keys, config, owned=True)
