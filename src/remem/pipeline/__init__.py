"""The LLM memory pipeline (DSPy): extraction, the maintenance agent, the chat agent, the pending queue.

Needs the ``remem[llm]`` extra (DSPy). Names are imported lazily, so ``remem.pipeline.queue`` (used by every
:class:`remem.Memory` for erasure) does not import DSPy.

>>> from remem import Memory
>>> from remem.pipeline import ScriptedLM
>>> memory = Memory("/tmp/demo", embedder="fake", lm="openai/gpt-4o-mini")   # or lm=ScriptedLM(...)
>>> memory.add("I like tea", user_id="alice", infer=True).events          # ADD/UPDATE/DELETE/NOOP + usage
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Agent": "agent",
    "AgentReply": "agent",
    "ToolCall": "agent",
    "Extractor": "extract",
    "Fact": "extract",
    "InferResult": "ingest",
    "JobBusyError": "ingest",
    "JobOutcome": "worker",
    "LMBudget": "budget",
    "BackgroundWorker": "worker",
    "Worker": "worker",
    "OutputPlan": "structured",
    "plan_output": "structured",
    "Pipeline": "ingest",
    "ReprocessReport": "ingest",
    "Maintainer": "maintain",
    "Job": "queue",
    "PendingQueue": "queue",
    "ScriptedLM": "scripted",
    "ScriptExhaustedError": "scripted",
    "format_reply": "scripted",
    "react_script": "scripted",
    "DEFAULT_CATEGORIES": "signatures",
    "ExtractedFact": "signatures",
    "MemoryExtract": "signatures",
    "ResponseGenerator": "signatures",
    "UpdateMemory": "signatures",
    "meter": "lm",
    "resolve_lm": "lm",
}

if TYPE_CHECKING:
    from .agent import Agent, AgentReply, ToolCall
    from .budget import LMBudget
    from .extract import Extractor, Fact
    from .ingest import InferResult, JobBusyError, Pipeline, ReprocessReport
    from .lm import meter, resolve_lm
    from .maintain import Maintainer
    from .queue import Job, PendingQueue
    from .scripted import ScriptedLM, ScriptExhaustedError, format_reply, react_script
    from .signatures import DEFAULT_CATEGORIES, ExtractedFact, MemoryExtract, ResponseGenerator, UpdateMemory
    from .structured import OutputPlan, plan_output
    from .worker import BackgroundWorker, JobOutcome, Worker

__all__ = [
    "DEFAULT_CATEGORIES",
    "Agent",
    "AgentReply",
    "BackgroundWorker",
    "ExtractedFact",
    "Extractor",
    "Fact",
    "InferResult",
    "Job",
    "JobBusyError",
    "JobOutcome",
    "LMBudget",
    "Maintainer",
    "MemoryExtract",
    "OutputPlan",
    "PendingQueue",
    "Pipeline",
    "ReprocessReport",
    "ResponseGenerator",
    "ScriptExhaustedError",
    "ScriptedLM",
    "ToolCall",
    "UpdateMemory",
    "Worker",
    "format_reply",
    "meter",
    "plan_output",
    "react_script",
    "resolve_lm",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'remem.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
