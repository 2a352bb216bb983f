"""How the pipeline asks for structured output: DSPy's JSON adapter with the provider's JSON-schema mode where
the provider has one, else DSPy's chat format. Every LM call of the pipeline goes through these adapters, which
also charge the add's LM budget (:func:`remem.pipeline.budget.charge`) before calling.

Which mode, per provider (``output="auto"``, the default; ``REMEM_LM_OUTPUT``):

| model | mode | what the request carries |
| --- | --- | --- |
| ``openai/gpt-4o-mini`` and other models DSPy's catalog marks as schema-capable (OpenAI, Gemini, …) | json | ``response_format: {type: json_schema, json_schema: {schema, strict: true}}`` (DSPy's own choice) |
| ``openai/<model>`` with ``api_base`` (vLLM, llama.cpp server, LM Studio: OpenAI-compatible servers) | json | the same ``response_format`` (vLLM: guided decoding; llama.cpp server: a grammar from the schema) |
| ``hosted_vllm/<model>`` | json | the same ``response_format`` (vLLM's guided decoding) |
| ``ollama/<model>``, ``ollama_chat/<model>`` | json | the same ``response_format`` on Ollama's OpenAI-compatible ``/v1/chat/completions`` (Ollama ≥ 0.5 turns it into its ``format`` schema, a grammar); DSPy 3.4 reaches Ollama there natively; with ``OLLAMA_API_BASE`` set it goes through LiteLLM to ``/api/generate``, where LiteLLM sends the schema as ``format`` |
| ``gguf:/path/model.gguf`` (llama-cpp-python in-process) | json | ``response_format: {type: json_object, schema}``: llama-cpp-python compiles the schema into a grammar |
| anything else (Anthropic, ``remem/scripted``, custom engines without schema support) | chat | DSPy's ``[[ ## field ## ]]`` text format |

A signature with an open-ended mapping (the ReAct step's ``next_tool_args: dict``) cannot be a strict schema:
it is sent as ``{type: json_object}`` (JSON mode) instead. ``output="json"`` forces the JSON adapter for any
model; ``output="chat"`` the chat format.

Failure handling: a reply that violates the schema (not JSON, a missing field, a wrong type) raises DSPy's
``AdapterParseError``; the pipeline retries the step (``retries``, default 2) and then leaves the turn in the
pending queue with the raw reply, as for any unusable output. If the server *refuses* the schema parameter
(HTTP 400 on a request that carried a forced ``response_format``), the adapter switches to the chat format for
this pipeline and repeats the call once in that format. DSPy's automatic chat → JSON re-ask after a parse
failure is off: the pipeline's own retries decide, so every retry is one counted call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import dspy
from dspy.utils.exceptions import ContextWindowExceededError, DSPyError, LMInvalidRequestError

from ..errors import ConfigurationError
from .budget import charge

logger = logging.getLogger(__name__)

OutputMode = Literal["auto", "json", "chat"]

#: Provider prefixes whose servers take an OpenAI ``response_format`` with a JSON schema although DSPy's model
#: catalog does not say so (local servers: the catalog knows no local model names).
SCHEMA_PROVIDERS = frozenset({"ollama", "ollama_chat", "hosted_vllm"})


@dataclass(frozen=True)
class OutputPlan:
    """The mode chosen for one LM: ``json`` (with ``force``: remem sends ``response_format`` itself) or ``chat``."""

    mode: Literal["json", "chat"]
    force: bool
    reason: str


def _engine(lm: Any) -> Any:
    return getattr(lm, "engine", None)


def _knows_schema(lm: Any) -> bool:
    try:
        return bool(getattr(lm, "supports_response_schema", False))
    except (DSPyError, ValueError, TypeError):
        return False


def plan_output(lm: Any, requested: OutputMode = "auto") -> OutputPlan:
    """Which output mode the pipeline uses with ``lm`` (see the module table)."""
    if requested not in ("auto", "json", "chat"):
        raise ConfigurationError(f"unknown LM output mode {requested!r}: use auto, json or chat")
    if requested == "chat":
        return OutputPlan("chat", False, "chat format requested")
    engine = _engine(lm)
    if engine is not None and not isinstance(engine, str):
        if getattr(engine, "supports_response_schema", False):
            return OutputPlan("json", False, "the engine declares JSON-schema support")
        if requested == "json":
            return OutputPlan("json", True, "JSON requested")
        return OutputPlan("chat", False, "custom engine without JSON-schema support")
    model = str(getattr(lm, "model", ""))
    provider = model.split("/", 1)[0] if "/" in model else ""
    api_base = (getattr(lm, "kwargs", None) or {}).get("api_base")
    if provider in SCHEMA_PROVIDERS:
        return OutputPlan("json", True, f"{provider}: JSON schema via response_format")
    if provider == "openai" and api_base and not _knows_schema(lm):
        return OutputPlan("json", True, "OpenAI-compatible server: JSON schema via response_format")
    if _knows_schema(lm):
        return OutputPlan("json", False, "the model catalog marks the model as schema-capable")
    if requested == "json":
        return OutputPlan("json", True, "JSON requested")
    return OutputPlan("chat", False, "no known JSON-schema mode for this provider")


class ChatFormat(dspy.ChatAdapter):  # type: ignore[misc]
    """DSPy's chat format, budgeted, without the automatic JSON re-ask (the pipeline retries instead)."""

    def __init__(self) -> None:
        super().__init__(use_json_adapter_fallback=False)

    def __call__(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: Any, inputs: Any) -> Any:
        charge()
        return super().__call__(lm, lm_kwargs, signature, demos, inputs)


class SchemaFormat(dspy.JSONAdapter):  # type: ignore[misc]
    """DSPy's JSON adapter, budgeted; with ``force`` it sends the signature's JSON schema as ``response_format``
    itself (servers DSPy's catalog does not know), and falls back to :class:`ChatFormat` if the server refuses
    it."""

    def __init__(self, force: bool) -> None:
        super().__init__()
        self.force = force
        self.refused = False
        self.chat = ChatFormat()

    def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any) -> None:
        if not self.force or "response_format" in lm_kwargs:
            super()._prepare_response_format(lm, lm_kwargs, signature)
            return
        lm_kwargs["response_format"] = response_format_for(signature)

    def __call__(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: Any, inputs: Any) -> Any:
        if self.refused:
            return self.chat(lm, lm_kwargs, signature, demos, inputs)
        charge()
        try:
            return super().__call__(lm, dict(lm_kwargs), signature, demos, inputs)
        except ContextWindowExceededError:
            raise
        except LMInvalidRequestError as exc:
            if not self.force:
                raise
            self.refused = True
            logger.warning("the server refused response_format (%s); using the chat format from now on",
                           type(exc).__name__)
            return self.chat(lm, lm_kwargs, signature, demos, inputs)


def response_format_for(signature: Any) -> Any:
    """The ``response_format`` for a signature: a strict JSON schema of its outputs (a pydantic model, which
    DSPy serialises per provider), or ``{"type": "json_object"}`` when an output is an open-ended mapping."""
    from dspy.adapters import json_adapter

    try:
        if json_adapter._has_open_ended_mapping(signature):
            return {"type": "json_object"}
        return json_adapter._get_structured_outputs_response_format(signature)
    except (AttributeError, ValueError, TypeError) as exc:  # a DSPy without these helpers, or an odd signature
        logger.warning("no JSON schema for this signature (%s): JSON mode instead", type(exc).__name__)
        return {"type": "json_object"}


def adapter_for(lm: Any, requested: OutputMode = "auto") -> ChatFormat | SchemaFormat:
    """The adapter the pipeline uses with ``lm`` (one per pipeline: it remembers a refusal)."""
    plan = plan_output(lm, requested)
    return SchemaFormat(plan.force) if plan.mode == "json" else ChatFormat()
