"""A local GGUF model through ``llama-cpp-python`` as a DSPy engine object (the ``remem[llama]`` extra).

``pip install 'remem[llama]'`` compiles llama.cpp from source: several minutes on a small machine. Small
models (0.5B-1.5B) follow the output format only sometimes: the pipeline's retries, typed errors and pending
queue are what keep their bad output from losing data. Use a real model for real work.

Structured output: the engine declares JSON-schema support, so DSPy's JSON adapter puts the signature's schema
in the request (``response_format``); the engine passes it to ``create_chat_completion`` as
``response_format={"type": "json_object", "schema": …}``, which llama-cpp-python compiles into a grammar: the
model can only emit JSON of that shape. ``{"type": "json_object"}`` alone (no schema) is a generic JSON grammar.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage, response_to_events

from ..errors import ConfigurationError


def llama_response_format(requested: Any) -> dict[str, Any] | None:
    """DSPy's ``response_format`` (``{"type": "json_schema", "schema": …}`` or ``{"type": "json_object"}``)
    as llama-cpp-python takes it (``{"type": "json_object", "schema": …}``); ``None`` when there is none."""
    if not isinstance(requested, dict):
        return None
    kind = requested.get("type")
    if kind == "json_schema":
        schema = requested.get("schema")
        if schema is None and isinstance(requested.get("json_schema"), dict):
            schema = requested["json_schema"].get("schema")
        return {"type": "json_object", "schema": schema} if isinstance(schema, dict) else {"type": "json_object"}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


class LlamaCppEngine:
    """``complete(Request) -> Response`` over ``llama_cpp.Llama.create_chat_completion`` (one call at a time).

    ``llm`` is a ``llama_cpp.Llama`` (or anything with its ``create_chat_completion``); :meth:`load` opens a
    GGUF file."""

    supports_response_schema = True
    supported_params = frozenset({"response_format", "temperature", "max_tokens"})

    def __init__(self, llm: Any, *, name: str, temperature: float | None = None,
                 max_tokens: int | None = None) -> None:
        self.llm = llm
        self.name = name
        self.temperature = 0.0 if temperature is None else temperature
        self.max_tokens = max_tokens or 1024
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, *, n_ctx: int = 8192, temperature: float | None = None,
             max_tokens: int | None = None) -> LlamaCppEngine:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigurationError(
                "a GGUF model needs llama-cpp-python: pip install 'remem[llama]' (it compiles for several minutes)"
            ) from exc
        if not path.is_file():
            raise ConfigurationError(f"no GGUF file at {path}", path=str(path))
        llm = Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)
        return cls(llm, name=path.name, temperature=temperature, max_tokens=max_tokens)

    def complete(self, request: Any) -> Response:
        messages: list[dict[str, str]] = []
        system = request.system
        if system is not None:
            text = system if isinstance(system, str) else "".join(str(getattr(p, "text", "")) for p in system)
            messages.append({"role": "system", "content": text})
        messages += [{"role": m.role if m.role in ("user", "assistant") else "user", "content": m.text or ""}
                     for m in request.messages]
        kwargs: dict[str, Any] = {"messages": messages, "temperature": self.temperature,
                                  "max_tokens": self.max_tokens}
        fmt = llama_response_format(getattr(request.config, "response_format", None))
        if fmt is not None:
            kwargs["response_format"] = fmt
        with self._lock:
            out = self.llm.create_chat_completion(**kwargs)
        text = str(out["choices"][0]["message"].get("content") or "")
        usage = out.get("usage") or {}
        return Response(
            id=None, model=self.name, message=Message.assistant([TextPart(text)]), finish_reason="stop",
            usage=Usage(input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens")),
        )

    def stream(self, request: Any) -> Any:
        return response_to_events(self.complete(request))

    def close(self) -> None:
        return None


def llama_lm(path: Path, *, temperature: float | None = None, max_tokens: int | None = None) -> dspy.BaseLM:
    engine = LlamaCppEngine.load(path, temperature=temperature, max_tokens=max_tokens)
    return engine_lm(engine)


def engine_lm(engine: LlamaCppEngine) -> dspy.BaseLM:
    """A ``dspy.LM`` over an engine (no cache: a retry must reach the model again)."""
    return dspy.LM(f"local/{Path(engine.name).stem}", engine=engine, cache=False, num_retries=0)
