"""Name registries for pluggable parts ("provider:model" strings).

A provider registers a factory under a name; ``create("openai:text-embedding-3-small", dimensions=256)`` splits the
spec at the first colon and calls the factory with the model part (``None`` when absent). Factories import
their heavy dependencies themselves, so registering costs nothing and an unused provider is never imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import ProviderNotFoundError

T = TypeVar("T")
Factory = Callable[..., T]


class Registry(Generic[T]):
    """A mapping from provider name to a factory ``(model: str | None, **options) -> T``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Factory[T]] = {}

    def register(self, name: str) -> Callable[[Factory[T]], Factory[T]]:
        def deco(factory: Factory[T]) -> Factory[T]:
            self._factories[name] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        return sorted(self._factories)

    def create(self, spec: str, **options: Any) -> T:
        provider, _, model = spec.partition(":")
        factory = self._factories.get(provider)
        if factory is None:
            raise ProviderNotFoundError(
                f"unknown {self.kind} provider {provider!r} (known: {', '.join(self.names())})",
                spec=spec,
            )
        return factory(model or None, **options)
