"""The memory facades (sync and async)."""

from .aio import AsyncMemory
from .core import Memory

__all__ = ["AsyncMemory", "Memory"]
