"""Language models for the pipeline: model strings to ``dspy.LM``, and LLM usage counted per operation.

Model strings follow DSPy/LiteLLM: ``openai/gpt-4o-mini``, ``anthropic/claude-…``, ``ollama_chat/llama3.2``
(``api_base`` defaults to ``http://localhost:11434/v1``, Ollama's OpenAI-compatible API, which DSPy 3.4 calls
natively; a bare ``http://host:11434`` gets ``/v1``), and any OpenAI-compatible server (vLLM,
llama.cpp server, LM Studio) as ``openai/<model>`` with ``api_base``. Two local forms are handled here:
``gguf:/path/model.gguf`` (or a path ending in ``.gguf``) runs a GGUF file in-process through
``llama-cpp-python`` (the ``remem[llama]`` extra), and ``scripted:/path/script.json`` loads a
:class:`~remem.pipeline.scripted.ScriptedLM` (tests, demos).

DSPy's response cache is off: a retry after unusable output must reach the model again, not replay it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import dspy
from dspy.utils.callback import BaseCallback

from ..errors import ConfigurationError
from ..models import LLMUsage

#: A model string (``openai/gpt-4o-mini``, ``gguf:…``, ``scripted:…``) or a ready ``dspy.BaseLM``.
LMSpec: TypeAlias = Any


def resolve_lm(
    spec: LMSpec,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    timeout: float | None = 120.0,
    num_retries: int = 2,
) -> dspy.BaseLM:
    """A ready ``dspy`` LM for ``spec`` (an LM object is returned unchanged)."""
    if isinstance(spec, dspy.BaseLM):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigurationError(f"invalid language model {spec!r}: use e.g. 'openai/gpt-4o-mini'")
    spec = spec.strip()
    if spec.startswith("scripted:"):
        from .scripted import ScriptedLM

        return ScriptedLM.from_file(spec.removeprefix("scripted:"))
    if spec.startswith("gguf:") or spec.endswith(".gguf"):
        from .llama import llama_lm

        return llama_lm(Path(spec.removeprefix("gguf:")).expanduser(), temperature=temperature, max_tokens=max_tokens)
    if "/" not in spec:
        raise ConfigurationError(
            f"language model {spec!r} has no provider prefix: use 'openai/…', 'anthropic/…', 'ollama_chat/…', "
            "'openai/<model>' with an api base for an OpenAI-compatible server, or 'gguf:/path/model.gguf'"
        )
    kwargs: dict[str, Any] = {}
    if api_base:
        kwargs["api_base"] = ollama_base(api_base) if _ollama_native(spec) else api_base
    if api_key:
        kwargs["api_key"] = api_key
    if timeout is not None:
        kwargs["timeout"] = timeout
    try:
        return dspy.LM(
            spec, cache=False, num_retries=num_retries, temperature=temperature, max_tokens=max_tokens, **kwargs
        )
    except (ValueError, TypeError, dspy.utils.exceptions.LMError) as exc:
        raise ConfigurationError(f"cannot configure language model {spec!r}: {exc}", model=spec) from exc


def ollama_base(api_base: str) -> str:
    """Ollama's OpenAI-compatible base URL: DSPy 3.4 reaches ``ollama/…`` and ``ollama_chat/…`` models natively at
    ``<api_base>/chat/completions`` (its default base is ``http://localhost:11434/v1``), so a bare server address
    (``http://localhost:11434``, the LiteLLM convention) gets ``/v1``; a base with a path is kept."""
    parts = urlsplit(api_base.strip())
    if parts.scheme and parts.netloc and parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, "/v1", parts.query, parts.fragment))
    return api_base


def _ollama_native(spec: str) -> bool:
    """Whether DSPy will call this Ollama model on its OpenAI-compatible API (``/v1``): it does unless a
    ``<PREFIX>_API_BASE``/``<PREFIX>_BASE_URL`` variable is set, which sends it through LiteLLM and Ollama's own
    API (whose base has no ``/v1``)."""
    prefix = spec.split("/", 1)[0]
    return prefix in ("ollama", "ollama_chat") and not any(
        os.environ.get(f"{prefix.upper()}_{name}") for name in ("API_BASE", "BASE_URL"))


def lm_name(lm: dspy.BaseLM) -> str:
    return str(getattr(lm, "model", type(lm).__name__))


class _CallCounter(BaseCallback):  # type: ignore[misc]
    """Counts LM calls and their wall time (failed calls included: they cost time and often tokens)."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0
        self._started: dict[str, float] = {}

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.calls += 1
        self._started[call_id] = time.perf_counter()

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None:
        start = self._started.pop(call_id, None)
        if start is not None:
            self.seconds += time.perf_counter() - start


class UsageMeter:
    """The LLM usage of one operation, read after the ``meter()`` block (or during it)."""

    def __init__(self) -> None:
        self._counter = _CallCounter()
        self._tracker: Any = None
        self.id = uuid.uuid4().hex

    @property
    def usage(self) -> LLMUsage:
        prompt = completion = 0
        if self._tracker is not None:
            for totals in self._tracker.get_total_tokens().values():
                prompt += int(totals.get("prompt_tokens") or 0)
                completion += int(totals.get("completion_tokens") or 0)
        return LLMUsage(
            calls=self._counter.calls, prompt_tokens=prompt, completion_tokens=completion,
            seconds=round(self._counter.seconds, 6),
        )


@contextmanager
def meter(lm: dspy.BaseLM, adapter: Any = None) -> Iterator[UsageMeter]:
    """Run DSPy calls with ``lm`` (thread-local) and count calls, tokens and seconds spent in the LM."""
    m = UsageMeter()
    callbacks = [*(dspy.settings.get("callbacks") or []), m._counter]
    ctx: dict[str, Any] = {"lm": lm, "callbacks": callbacks}
    if adapter is not None:
        ctx["adapter"] = adapter
    with dspy.context(**ctx), dspy.track_usage() as tracker:
        m._tracker = tracker
        yield m


RETRYABLE: tuple[type[BaseException], ...] = (  # TypeError: output of the wrong type
    dspy.utils.exceptions.DSPyError,  # unparseable output (AdapterParseError), provider errors, timeouts
    ValueError,  # output that parsed but failed our validation (pydantic's ValidationError included)
    TypeError,
    TimeoutError,
)


def raw_output_of(exc: BaseException) -> str:
    """What the model said, when the failure carries it (parse errors do); else the error text."""
    raw = getattr(exc, "lm_response", None)
    return str(raw) if raw is not None else f"{type(exc).__name__}: {exc}"
