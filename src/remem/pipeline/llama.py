"""A local GGUF model through ``llama-cpp-python`` as a DSPy engine object (the ``remem[llama]`` extra).

``pip install 'remem[llama]'`` compiles llama.cpp from source: several minutes on a small machine. Small
models (0.5B-1.5B) follow the output format only sometimes: the pipeline's retries, typed errors and pending
queue are what keep their bad output from losing data. Use a real model for real work.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage, response_to_events

from ..errors import ConfigurationError


class LlamaCppEngine:
    """``complete(Request) -> Response`` over ``llama_cpp.Llama.create_chat_completion`` (one call at a time)."""

    def __init__(self, path: Path, *, n_ctx: int = 8192, temperature: float | None = None,
                 max_tokens: int | None = None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigurationError(
                "a GGUF model needs llama-cpp-python: pip install 'remem[llama]' (it compiles for several minutes)"
            ) from exc
        if not path.is_file():
            raise ConfigurationError(f"no GGUF file at {path}", path=str(path))
        self.path = path
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)
        self.temperature = 0.0 if temperature is None else temperature
        self.max_tokens = max_tokens or 1024
        self._lock = threading.Lock()

    def complete(self, request: Any) -> Response:
        messages: list[dict[str, str]] = []
        system = request.system
        if system is not None:
            text = system if isinstance(system, str) else "".join(str(getattr(p, "text", "")) for p in system)
            messages.append({"role": "system", "content": text})
        messages += [{"role": m.role if m.role in ("user", "assistant") else "user", "content": m.text or ""}
                     for m in request.messages]
        with self._lock:
            out = self.llm.create_chat_completion(messages=messages, temperature=self.temperature,
                                                  max_tokens=self.max_tokens)
        text = str(out["choices"][0]["message"].get("content") or "")
        usage = out.get("usage") or {}
        return Response(
            id=None, model=self.path.name, message=Message.assistant([TextPart(text)]), finish_reason="stop",
            usage=Usage(input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens")),
        )

    def stream(self, request: Any) -> Any:
        return response_to_events(self.complete(request))

    def close(self) -> None:
        return None


def llama_lm(path: Path, *, temperature: float | None = None, max_tokens: int | None = None) -> dspy.BaseLM:
    engine = LlamaCppEngine(path, temperature=temperature, max_tokens=max_tokens)
    return dspy.LM(f"local/{path.stem}", engine=engine, cache=False, num_retries=0)
