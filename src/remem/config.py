"""Configuration: explicit arguments first, then ``REMEM_*`` environment variables, then defaults.

| variable | default | meaning |
| --- | --- | --- |
| ``REMEM_HOME`` | ``~/.remem`` | data directory (embedded store, history database, pending queue) |
| ``REMEM_EMBEDDER`` | ``local`` | embedder spec, e.g. ``fake``, ``openai:text-embedding-3-small`` |
| ``REMEM_EMBEDDER_DIMENSIONS`` | unset | pinned output dimension for embedders that support it (1 to 65,536) |
| ``REMEM_STORE`` | ``edge`` | ``edge``, ``qdrant``, ``markdown`` or ``pgvector`` (vectors in the ``REMEM_DATABASE_URL`` database) |
| ``REMEM_DATABASE_URL`` | unset | ``postgresql://…``: history, queue and keys in Postgres (many server workers) |
| ``REMEM_DATABASE_POOL`` | ``8`` | connections per process in the Postgres pool |
| ``REMEM_QDRANT_URL`` | unset | Qdrant server/cluster URL (selects the ``qdrant`` store), or ``:memory:`` |
| ``REMEM_QDRANT_API_KEY`` | unset | API key for the Qdrant server |
| ``REMEM_COLLECTION`` | ``memories`` | collection name (qdrant store) |
| ``REMEM_MAX_TEXT_CHARS`` | ``1000000`` | longest memory text accepted (1 to 10,000,000; longer than the embedder's window: indexed in chunks) |
| ``REMEM_LM`` | unset | default language model for the LLM pipeline |
| ``REMEM_GRAPH`` | ``0`` | ``1``: graph memory on (entities and time-aware relations, :mod:`remem.graph`) |
| ``REMEM_CONFLICT_FLOOR`` | ``0.7`` | cosine below which a new fact skips the maintenance agent (an ADD) |
| ``REMEM_LM_MAX_CALLS`` | ``12`` | LM calls one ``add(infer=True)`` may make (extraction + agent) |
| ``REMEM_LM_MAX_TOKENS`` | ``60000`` | LM tokens (prompt + completion) one ``add(infer=True)`` may spend |
| ``REMEM_LM_OUTPUT`` | ``auto`` | ``auto`` (JSON schema where the provider has it), ``json`` or ``chat`` |

A value that cannot be used (``REMEM_MAX_TEXT_CHARS=abc``, ``0``, ``-5``, ``10**30``, a name with control
characters, a path with a NUL) is a :class:`~remem.errors.ConfigurationError` naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from .bounds import DEFAULT_MAX_TEXT_CHARS, MAX_TEXT_CHARS_LIMIT, bad_char, check_label
from .errors import ConfigurationError

#: Largest embedding dimension accepted (the largest common models make 4,096).
MAX_DIMENSIONS = 65_536


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def default_home() -> Path:
    return Path(_env("REMEM_HOME") or Path.home() / ".remem").expanduser()


class Settings(BaseModel):
    """Resolved configuration of one :class:`remem.Memory`."""

    model_config = ConfigDict(extra="forbid")

    home: Path = Field(default_factory=default_home)
    embedder: str = Field(default="local", max_length=500)
    embedder_dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)
    store: str = Field(default="edge", max_length=500)
    qdrant_url: str | None = Field(default=None, max_length=2000)
    qdrant_api_key: str | None = Field(default=None, max_length=2000)
    collection: str = Field(default="memories", pattern=r"^[A-Za-z0-9_\-]{1,255}$")
    database_url: str | None = Field(default=None, max_length=2000)
    database_pool_size: int = Field(default=8, ge=1, le=256)
    max_text_chars: int = Field(default=DEFAULT_MAX_TEXT_CHARS, ge=1, le=MAX_TEXT_CHARS_LIMIT)
    lm: str | None = Field(default=None, max_length=2000)
    graph: bool = False
    conflict_floor: float = Field(default=0.7, ge=-1.0, le=1.0, allow_inf_nan=False)
    lm_max_calls: int = Field(default=12, ge=1, le=10_000)
    lm_max_tokens: int = Field(default=60_000, ge=1, le=100_000_000)
    lm_output: Literal["auto", "json", "chat"] = "auto"

    @field_validator("home")
    @classmethod
    def _home(cls, v: Path) -> Path:
        if not str(v) or bad_char(str(v)) is not None:
            raise ValueError("not a usable path: it must be valid UTF-8 without NUL characters")
        return v

    @field_validator("embedder", "store", "qdrant_url", "qdrant_api_key", "lm", "database_url")
    @classmethod
    def _specs(cls, v: str | None) -> str | None:
        return None if v is None else check_label(v, "value", max_len=2000)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from ``REMEM_*`` variables; keyword arguments that are not None win."""
        values: dict[str, object] = {}
        env_map = {
            "home": "REMEM_HOME",
            "embedder": "REMEM_EMBEDDER",
            "embedder_dimensions": "REMEM_EMBEDDER_DIMENSIONS",
            "store": "REMEM_STORE",
            "qdrant_url": "REMEM_QDRANT_URL",
            "qdrant_api_key": "REMEM_QDRANT_API_KEY",
            "collection": "REMEM_COLLECTION",
            "database_url": "REMEM_DATABASE_URL",
            "database_pool_size": "REMEM_DATABASE_POOL",
            "max_text_chars": "REMEM_MAX_TEXT_CHARS",
            "lm": "REMEM_LM",
            "graph": "REMEM_GRAPH",
            "conflict_floor": "REMEM_CONFLICT_FLOOR",
            "lm_max_calls": "REMEM_LM_MAX_CALLS",
            "lm_max_tokens": "REMEM_LM_MAX_TOKENS",
            "lm_output": "REMEM_LM_OUTPUT",
        }
        for field, var in env_map.items():
            env_value = _env(var)
            if env_value is not None:
                values[field] = env_value
        if "qdrant_url" in values and "store" not in values:
            values["store"] = "qdrant"
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{env_map.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else '?'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigurationError(f"invalid configuration: {problems}") from exc
