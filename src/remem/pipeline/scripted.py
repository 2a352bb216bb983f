"""A scripted language model for tests, examples and offline demos (in the spirit of DSPy's ``DummyLM``).

It is a real ``dspy.LM`` with a custom engine (``complete(Request) -> Response``), so DSPy runs its whole
stack — adapters, parsing, ``Predict``, ``ReAct``, usage tracking — on the scripted text.

A script maps a *route* to a list of replies. A route is a signature class (or its name, for
``MemoryExtract``, ``UpdateMemory``, ``ResponseGenerator``): a request belongs to it when every input field of
the signature is announced in the request's system prompt — ``ReAct`` steps and its final extraction included.
A plain list is one route that takes every request. A reply is:

- a dict of output field → value, formatted the way DSPy's ``ChatAdapter`` expects (lists/dicts as JSON);
- a string, returned verbatim (use it for garbage on purpose: ``"{{not json"``);
- an exception instance, raised by the engine (a timeout, a provider error).

A route may also be a *policy*: a function of the request (``ScriptedRequest``: route, system prompt, user
text) returning a reply, called for every request of that route (``remem bench pipeline`` drives the pipeline
with one). ``latency`` (seconds) makes every reply wait that long, to time control flow with a slow model.

``default`` answers requests whose route is exhausted (``None``: a :class:`ScriptExhaustedError`).
Token usage is reported as ``len(text) // 4`` so usage accounting can be tested.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage, response_to_events

from ..errors import ConfigurationError

Reply = Mapping[str, Any] | str | BaseException
Route = str | type[dspy.Signature]


@dataclass(frozen=True)
class ScriptedRequest:
    """What a policy sees of a request: its route name, system prompt and user text."""

    route: str
    system: str
    user: str


Policy = Callable[[ScriptedRequest], Reply]
Script = Sequence[Reply] | Mapping[Route, Sequence[Reply] | Policy]

ANY = "*"


class ScriptExhaustedError(RuntimeError):
    """The script has no reply left for a request (a test that called the LM more often than planned)."""


def format_reply(fields: Mapping[str, Any]) -> str:
    """``{"facts": [...]}`` → the ChatAdapter wire format (``[[ ## facts ## ]]`` sections)."""
    parts = []
    for name, value in fields.items():
        text = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"[[ ## {name} ## ]]\n{text}")
    parts.append("[[ ## completed ## ]]")
    return "\n\n".join(parts)


def _system_text(request: Any) -> str:
    system = request.system
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    return "".join(str(getattr(p, "text", "")) for p in system)


def _route_fields(route: Route) -> list[str] | None:
    if isinstance(route, str):
        if route == ANY:
            return None
        from . import signatures

        sig = getattr(signatures, route, None)
        if sig is None:  # graph memory's signatures (TripletExtract, EntityMatch)
            from ..graph import signatures as graph_signatures

            sig = getattr(graph_signatures, route, None)
        if not (isinstance(sig, type) and issubclass(sig, dspy.Signature)):
            raise ConfigurationError(f"unknown script route {route!r}: use a signature name or '*'")
        route = sig
    return list(route.input_fields)


class ScriptedEngine:
    """The engine behind :class:`ScriptedLM`: picks the route, pops the next reply, records the request."""

    def __init__(self, script: Script, default: Reply | None = None, latency: float = 0.0) -> None:
        routes: Mapping[Route, Sequence[Reply] | Policy] = (
            {ANY: script} if not isinstance(script, Mapping) else script
        )
        self._routes: list[tuple[list[str] | None, list[Reply] | Policy, str]] = [
            (_route_fields(r), replies if callable(replies) else list(replies), r if isinstance(r, str) else r.__name__)
            for r, replies in routes.items()
        ]
        self.default = default
        self.latency = latency
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def _pick(self, system: str) -> tuple[str, Reply | Policy]:
        with self._lock:
            for fields, replies, name in self._routes:
                if fields is None or all(f"`{f}`" in system for f in fields):
                    if callable(replies):
                        return name, replies
                    if replies:
                        return name, replies.pop(0)
                    if self.default is not None:
                        return name, self.default
                    raise ScriptExhaustedError(f"scripted LM: no reply left for route {name}")
            if self.default is not None:
                return ANY, self.default
            raise ScriptExhaustedError("scripted LM: no route matches this request")

    def remaining(self) -> dict[str, int]:
        with self._lock:
            return {name: len(replies) for _, replies, name in self._routes if not callable(replies)}

    def complete(self, request: Any) -> Response:
        system = _system_text(request)
        user = "\n".join(str(m.text or "") for m in request.messages)
        route, picked = self._pick(system)
        with self._lock:
            self.requests.append({"route": route, "system": system, "user": user})
        reply = picked(ScriptedRequest(route, system, user)) if callable(picked) else picked
        if self.latency > 0:
            time.sleep(self.latency)
        if isinstance(reply, BaseException):
            raise reply
        text = reply if isinstance(reply, str) else format_reply(reply)
        return Response(
            id=None, model="scripted", message=Message.assistant([TextPart(text)]), finish_reason="stop",
            usage=Usage(input_tokens=(len(system) + len(user)) // 4, output_tokens=len(text) // 4),
        )

    def stream(self, request: Any) -> Any:
        return response_to_events(self.complete(request))

    def close(self) -> None:
        return None


class ScriptedLM(dspy.LM):  # type: ignore[misc]
    """A ``dspy.LM`` answering from a script (see the module docstring). ``requests`` records each prompt."""

    def __init__(self, script: Script, *, default: Reply | None = None, latency: float = 0.0) -> None:
        self.engine_impl = ScriptedEngine(script, default, latency)
        super().__init__("remem/scripted", engine=self.engine_impl, cache=False, num_retries=0)

    @property
    def requests(self) -> list[dict[str, str]]:
        return self.engine_impl.requests

    def remaining(self) -> dict[str, int]:
        return self.engine_impl.remaining()

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedLM:
        """Load ``{"routes": {"ResponseGenerator": [...], ...}, "default": ..., "latency": 0.05}`` (or a bare
        list) from JSON."""
        p = Path(path).expanduser()
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ConfigurationError(f"cannot read LM script {p}: {exc}", path=str(p)) from exc
        if isinstance(data, list):
            return cls(data)
        if not isinstance(data, dict) or not isinstance(data.get("routes", {}), dict):
            raise ConfigurationError(f"LM script {p} must be a list or {{'routes': {{...}}, 'default': ...}}")
        unknown = sorted(set(data) - {"routes", "default", "latency"})
        if unknown:  # e.g. {"MemoryExtract": [...]}: the signature names belong under "routes"
            raise ConfigurationError(f"LM script {p}: unknown keys {unknown[:5]}; the file is "
                                     "{'routes': {'<Signature>': [replies…]}, 'default': reply, 'latency': seconds}",
                                     path=str(p))
        latency = data.get("latency", 0.0)
        if not isinstance(latency, int | float) or latency < 0:
            raise ConfigurationError(f"LM script {p}: latency must be a number of seconds ≥ 0")
        return cls(data.get("routes", {}), default=data.get("default"), latency=float(latency))


def react_script(*calls: tuple[str, Mapping[str, Any]], outputs: Mapping[str, Any] | None = None) -> list[Reply]:
    """The replies of one ``dspy.ReAct`` run: each (tool, args) step, ``finish``, then the final ``outputs``.

    The maintenance agent skips ReAct's final extraction call: script it without ``outputs``. The chat agent
    reads its outputs (``response``, ``save_memory``): give them.

    >>> react_script(("add_memory", {"text": "Alice likes tea", "categories": ["preferences"]}))  # doctest: +ELLIPSIS
    [{'next_thought': ..., 'next_tool_name': 'add_memory', ...}, ...]
    """
    steps: list[Reply] = [
        {"next_thought": f"Call {name}.", "next_tool_name": name, "next_tool_args": dict(args)} for name, args in calls
    ]
    steps.append({"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}})
    if outputs is not None:
        steps.append({"reasoning": "Done.", **outputs})
    return steps
