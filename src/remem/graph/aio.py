""":class:`AsyncGraph`: graph memory for asyncio code (``AsyncMemory.graph``).

Every method runs the same :class:`~remem.graph.Graph` method in a worker thread (like
:class:`remem.AsyncMemory`'s): one implementation of the logic, and the event loop is never blocked. Writes keep
their per-user order through the sync layer's locks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from .core import Graph

P = ParamSpec("P")
R = TypeVar("R")


def _offload(method: Callable[Concatenate[Graph, P], R]) -> Callable[Concatenate[AsyncGraph, P], Coroutine[Any, Any, R]]:
    """An async method that runs ``method`` of the wrapped Graph in a worker thread (same signature)."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: AsyncGraph, /, *args: P.args, **kwargs: P.kwargs) -> R:
        bound: Callable[P, R] = getattr(self.sync, name)
        return await asyncio.to_thread(bound, *args, **kwargs)

    return wrapper


class AsyncGraph:
    """Async facade over :class:`~remem.graph.Graph`: the same methods, as coroutines."""

    def __init__(self, sync: Graph) -> None:
        self.sync = sync

    add = _offload(Graph.add)
    add_many = _offload(Graph.add_many)
    close = _offload(Graph.close)
    delete = _offload(Graph.delete)
    restore = _offload(Graph.restore)
    merge = _offload(Graph.merge)
    neighbours = _offload(Graph.neighbours)
    view = _offload(Graph.view)
    entity = _offload(Graph.entity)
    relation = _offload(Graph.relation)
    history = _offload(Graph.history)
    events = _offload(Graph.events)
    describe = _offload(Graph.describe)
