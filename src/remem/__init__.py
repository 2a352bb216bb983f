"""remem: persistent, per-user long-term memory for LLM agents.

>>> from remem import Memory
>>> with Memory() as m:
...     m.add("I moved to Lisbon in March", user_id="alice")
...     hits = m.search("where does alice live?", user_id="alice")
"""

from .config import Settings
from .embedders import Embedder, get_embedder
from .errors import (
    BudgetExceededError,
    ConfigurationError,
    EmbeddingError,
    ExtractionError,
    ImportFormatError,
    InvalidUserIdError,
    LLMError,
    MaintenanceError,
    NotFoundError,
    ProviderNotFoundError,
    RememError,
    StoreError,
    StoreLockedError,
    ValidationError,
)
from .memory import AsyncMemory, Memory
from .models import (
    AddResult,
    Context,
    ContextItem,
    EventType,
    ForgetResult,
    HistoryEvent,
    LLMUsage,
    MemoryEvent,
    MemoryRecord,
    Message,
    Page,
    SearchHit,
    Stats,
)
from .stores import VectorStore

__version__ = "0.1.0"

__all__ = [
    "AddResult",
    "Agent",
    "AsyncMemory",
    "BudgetExceededError",
    "ConfigurationError",
    "Context",
    "ContextItem",
    "Embedder",
    "EmbeddingError",
    "EventType",
    "ExtractionError",
    "ForgetResult",
    "HistoryEvent",
    "ImportFormatError",
    "InvalidUserIdError",
    "LLMError",
    "LLMUsage",
    "MaintenanceError",
    "Memory",
    "MemoryEvent",
    "MemoryRecord",
    "Message",
    "NotFoundError",
    "Page",
    "ProviderNotFoundError",
    "RememError",
    "SearchHit",
    "Settings",
    "Stats",
    "StoreError",
    "StoreLockedError",
    "ValidationError",
    "VectorStore",
    "__version__",
    "get_embedder",
]


def __getattr__(name: str) -> object:
    """``remem.Agent`` is imported on first use: the LLM pipeline needs DSPy (the ``remem[llm]`` extra)."""
    if name == "Agent":
        from .pipeline.agent import Agent

        return Agent
    raise AttributeError(f"module 'remem' has no attribute {name!r}")
