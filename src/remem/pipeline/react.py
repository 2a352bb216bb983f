"""``dspy.ReAct`` with the host's guard rails: an unknown tool is an observation, not a crash.

Stock ReAct types ``next_tool_name`` as a ``Literal`` of the tool names, so a model that names a tool that does
not exist makes the whole step unparseable. Here the field is a plain string and a lookup of an unknown name
returns a tool that answers with an error observation, so the agent can correct itself in the next step.
Everything else — the loop, the trajectory, argument validation of each ``dspy.Tool`` (a malformed argument
becomes an "Execution error" observation), the final extraction — is DSPy's own ``ReAct``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dspy


class _ToolTable(dict[str, Any]):
    def __missing__(self, name: str) -> Callable[..., str]:
        known = ", ".join(k for k in self if k != "finish")

        def unknown(**_: Any) -> str:
            return f"error: there is no tool named {name!r}; use one of: {known}, finish"

        return unknown


class _HostSummary(dspy.Module):  # type: ignore[misc]
    """Stands in for ReAct's final extraction call when its outputs are not used: no LM call."""

    def __init__(self, outputs: dict[str, str]) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, **_: Any) -> dspy.Prediction:
        return dspy.Prediction(**self.outputs)


class GuardedReAct(dspy.ReAct):  # type: ignore[misc]
    """``summarize=False`` skips ReAct's final extraction call (one LM call per run) for agents whose outputs
    the host does not read — the maintenance agent acts through its tools; its ``summary`` was never used."""

    def __init__(self, signature: type[dspy.Signature], tools: list[Callable[..., Any]], max_iters: int,
                 *, summarize: bool = True) -> None:
        super().__init__(signature, tools=tools, max_iters=max_iters)
        self.tools: dict[str, Any] = _ToolTable(self.tools)
        self.react.signature = self.react.signature.with_updated_fields("next_tool_name", type_=str)
        if not summarize:
            self.extract = _HostSummary({name: "(not asked: see the tool calls)"
                                         for name in self.signature.output_fields})


def tool_calls(trajectory: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(tool name, arguments, observation) for each step of a ReAct trajectory, ``finish`` excluded."""
    out = []
    i = 0
    while f"tool_name_{i}" in trajectory:
        name = str(trajectory[f"tool_name_{i}"])
        if name != "finish":
            out.append((name, trajectory.get(f"tool_args_{i}"), str(trajectory.get(f"observation_{i}", ""))))
        i += 1
    return out
