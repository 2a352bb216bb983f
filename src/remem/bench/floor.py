"""Measuring triage's conflict floor on LoCoMo's observations (``remem bench pipeline`` prints this table).

A floor trades cost for recall: a fact whose best cosine to the user's earlier facts is below it is added
without the agent (no LM call); above it, the agent sees it. So, for a floor ``f``:

- **to agent** — the share of facts whose best cosine to an observation of an *earlier session* of the same
  conversation is ≥ ``f`` (no labels needed; every observation with an earlier one counts);
- **conflict recall** — the share of *conflicts* among them that reach the agent, where conflicts come from the
  hand labels shipped in ``remem/data/locomo_dev_conflict_labels.json`` (a stratified sample of 113
  observations, each judged against its three most similar earlier ones — see the file's ``about``/``rule``).
  The estimate weights each labelled item by its stratum (``stratum size / items drawn``), so it stands for all
  observations, not for the sample.

The labels were drawn with the packaged MiniLM embedder; recall under another embedder reuses the same
conflict labels with that embedder's cosines (a conflict reaches the agent if its best cosine is above the
floor), which is meaningful but not a fresh sample.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders import Embedder
from ..errors import ValidationError
from .locomo import normalize_evidence

LABELS = "locomo_dev_conflict_labels.json"
FLOORS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


@dataclass(frozen=True)
class Observation:
    """One LoCoMo observation: ``id`` is ``<sample>/S<session>/<speaker>/<index>``."""

    id: str
    conversation: str
    session: int
    speaker: str
    text: str
    evidence: list[str]


@dataclass(frozen=True)
class FloorRow:
    floor: float
    to_agent: float
    conflict_recall: float


def load_observations(path: str | Path) -> list[Observation]:
    """Every observation of a LoCoMo file, ordered by conversation, session, speaker (file order), index."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationError(f"cannot read LoCoMo data {path}: {exc}", path=str(path)) from exc
    if not isinstance(data, list):
        raise ValidationError(f"{path} is not a LoCoMo file (expected a JSON list of samples)", path=str(path))
    out: list[Observation] = []
    for s_index, sample in enumerate(data):
        sid = str(sample.get("sample_id") or f"sample-{s_index}")
        observations = sample.get("observation") or {}
        if not isinstance(observations, dict):
            raise ValidationError(f"{path}: sample {sid} has no observation mapping", path=str(path))
        keyed: list[tuple[int, str, dict[str, Any]]] = []
        for key, per_speaker in observations.items():
            session = key.removeprefix("session_").removesuffix("_observation")
            if not session.isdigit() or not isinstance(per_speaker, dict):
                continue
            keyed.append((int(session), key, per_speaker))
        for session, _, per_speaker in sorted(keyed):
            for speaker, items in per_speaker.items():
                for index, item in enumerate(items or []):
                    if not isinstance(item, list | tuple) or not item:
                        continue
                    text = str(item[0]).strip()
                    raw = item[1] if len(item) > 1 else []
                    evidence = normalize_evidence(raw if isinstance(raw, list) else [raw])
                    if text:
                        out.append(Observation(f"{sid}/S{session}/{speaker}/{index}", sid, session, speaker, text,
                                               evidence))
    return out


def load_labels() -> dict[str, Any]:
    """The shipped hand labels (see the module docstring)."""
    return dict(json.loads(resources.files("remem.data").joinpath(LABELS).read_text(encoding="utf-8")))


def labelled(observations: Sequence[Observation]) -> bool:
    """Whether the shipped conflict labels name observations of this file (LoCoMo dev: conv-26, conv-30)."""
    ids = {o.id for o in observations}
    return any(it["fact"] in ids for it in load_labels()["items"])


def best_earlier_cosine(observations: Sequence[Observation], embedder: Embedder) -> dict[str, float]:
    """For each observation with one from an earlier session of its conversation: the best cosine to those."""
    vectors = embedder.embed([o.text for o in observations])
    best: dict[str, float] = {}
    for i, o in enumerate(observations):
        earlier = [j for j, p in enumerate(observations) if p.conversation == o.conversation and p.session < o.session]
        if earlier:
            best[o.id] = float(np.max(vectors[earlier] @ vectors[i]))
    return best


def floor_table(observations: Sequence[Observation], embedder: Embedder,
                floors: Sequence[float] = FLOORS) -> list[FloorRow]:
    """Share of facts sent to the agent and estimated conflict recall per floor (see the module docstring)."""
    best = best_earlier_cosine(observations, embedder)
    labels = load_labels()
    sizes = labels["strata"]["sizes"]
    drawn = [sum(1 for it in labels["items"] if it["stratum"] == k) for k in range(len(sizes))]
    conflicts = [(it["fact"], sizes[it["stratum"]] / drawn[it["stratum"]]) for it in labels["items"]
                 if it["conflicts_with"] and it["fact"] in best]
    if not conflicts:
        raise ValidationError("the conflict labels match no observation of this file (they are for LoCoMo dev: "
                              "conv-26 and conv-30)")
    total = sum(w for _, w in conflicts)
    values = np.array(list(best.values()))
    return [FloorRow(floor=f, to_agent=float(np.mean(values >= f)),
                     conflict_recall=sum(w for fid, w in conflicts if best[fid] >= f) / total) for f in floors]
