""":class:`AsyncMemory`: the same API for asyncio code.

The embedded store, SQLite and the ONNX embedder are synchronous libraries, so every method runs the
corresponding :class:`~remem.memory.core.Memory` method in a worker thread: there is exactly one
implementation of the logic, and the event loop is never blocked. Per-user write ordering is kept by the
sync layer's locks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from ..graph.aio import AsyncGraph
from .core import Memory

P = ParamSpec("P")
R = TypeVar("R")


def _offload(
    method: Callable[Concatenate[Memory, P], R],
) -> Callable[Concatenate[AsyncMemory, P], Coroutine[Any, Any, R]]:
    """An async method that runs ``method`` of the wrapped Memory in a worker thread (same signature).

    The method is looked up on the instance, so a subclass of Memory that overrides it is honoured.
    """
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: AsyncMemory, /, *args: P.args, **kwargs: P.kwargs) -> R:
        bound: Callable[P, R] = getattr(self.sync, name)
        return await asyncio.to_thread(bound, *args, **kwargs)

    return wrapper


class AsyncMemory:
    """Async facade over :class:`Memory`; takes the same constructor arguments, or ``sync=`` an existing one."""

    def __init__(self, *args: Any, sync: Memory | None = None, **kwargs: Any) -> None:
        self.sync = sync if sync is not None else Memory(*args, **kwargs)

    add = _offload(Memory.add)
    add_records = _offload(Memory.add_records)
    search = _offload(Memory.search)
    context = _offload(Memory.context)
    get = _offload(Memory.get)
    list = _offload(Memory.list)
    update = _offload(Memory.update)
    delete = _offload(Memory.delete)
    restore = _offload(Memory.restore)
    history = _offload(Memory.history)
    forget_user = _offload(Memory.forget_user)
    export = _offload(Memory.export)
    import_ = _offload(Memory.import_)
    stats = _offload(Memory.stats)
    users = _offload(Memory.users)
    doctor = _offload(Memory.doctor)
    recover = _offload(Memory.recover)

    @property
    def graph(self) -> AsyncGraph:
        """Graph memory (:class:`remem.graph.aio.AsyncGraph`: ``memory.graph``'s methods as coroutines);
        ``ConfigurationError`` when graph memory is off."""
        return AsyncGraph(self.sync.graph)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
