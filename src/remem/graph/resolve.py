"""Entity resolution: which node a mention ("Maya", "maya", "my sister Maya") is, or whether it is a new one.

Three steps, cheapest first, over the user's entities (plus the new ones of the same batch):

1. **exact name** — the mention's :func:`~remem.graph.names.name_key` equals an entity's name or alias key
   (and the types agree when both are known). One such entity whose *hint* agrees is the match; hints agree
   when either is missing, when one's content words contain the other's ("my sister" / "Alice's sister"), or
   when their embeddings have cosine ≥ :attr:`Thresholds.hint_same`. Hints that disagree ("Alice's sister" vs
   "Alice's colleague at Acme") or several same-named entities make the mention **ambiguous**.
2. **embedding** — the cosine of the mention's name vector with each entity's name vector (same type):
   ≥ :attr:`Thresholds.same` is a match (spelling variants: "New York" / "New York City" 0.95 with the packaged
   MiniLM); between :attr:`Thresholds.maybe` and ``same`` is ambiguous ("Maya" / "Maya Chen" 0.78, "Acme" /
   "Acme Corp" 0.83); below ``maybe`` is a new entity ("Lisbon" / "Berlin" 0.49).
3. **confirmation** (only for ambiguous mentions, only with an LM — the pipeline passes one): a short
   ``EntityMatch`` call picks one of the candidates or says "new". Without an LM the rule is deterministic:
   hints that disagree → a new entity (a wrong merge corrupts facts, a missed one only splits them; ``Graph.merge``
   joins two nodes by hand); several same-named entities and no hint → the most recently updated one.

The thresholds were read off the packaged embedder (all-MiniLM-L6-v2 int8) on the name pairs above; another
embedder may need others (``Graph(thresholds=...)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..embedders import Embedder
from .models import Entity, EntityType
from .names import name_key

_WORD = re.compile(r"\w+")
_WEAK = frozenset(["my", "our", "his", "her", "their", "your", "the", "a", "an", "its", "s", "of", "at", "in"])


@dataclass(frozen=True)
class Thresholds:
    """Cosine thresholds of resolution and lookup (see the module docstring for where they come from)."""

    same: float = 0.90
    maybe: float = 0.75
    hint_same: float = 0.80
    lookup: float = 0.50  # a free-text query names an entity when its cosine with the name reaches this


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class Mention:
    """A name as a triplet or a host gives it, canonicalised (``hint`` may come from "my sister Maya")."""

    name: str
    key: str
    type: EntityType | None
    hint: str | None
    vector: np.ndarray
    context: str = ""  # the sentence it was mentioned in (shown to the confirmation step)


@dataclass
class Candidate:
    entity: Entity
    score: float
    facts: list[str] = field(default_factory=list)  # a few of its relations, for the confirmation step


#: The confirmation step: (mention, candidates) -> index of the matching candidate, or None for a new entity.
Confirm = Callable[[Mention, Sequence[Candidate]], int | None]


@dataclass
class Decision:
    """What resolution decided for one mention: an existing entity (maybe with a new alias or hint) or a new
    one; ``asked`` says whether the confirmation step was called."""

    entity: Entity
    new: bool
    changed: bool = False
    asked: bool = False


def content_words(text: str | None) -> set[str]:
    return {w for w in _WORD.findall((text or "").casefold()) if w not in _WEAK}


class Resolver:
    """Resolves mentions against a working set of a user's entities (loaded once per batch by the caller)."""

    def __init__(self, embedder: Embedder, entities: Sequence[Entity], vectors: np.ndarray | None,
                 thresholds: Thresholds, confirm: Confirm | None = None,
                 facts_of: Callable[[Entity], list[str]] | None = None) -> None:
        self.embedder, self.thresholds, self.confirm = embedder, thresholds, confirm
        self.entities: list[Entity] = list(entities)
        self.vectors: list[np.ndarray] = list(vectors) if vectors is not None else []
        self.facts_of = facts_of or (lambda e: [])
        self._hint_vectors: dict[str, np.ndarray] = {}

    # -- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def keys(entity: Entity) -> set[str]:
        return {name_key(entity.name), *(name_key(a) for a in entity.aliases)}

    @staticmethod
    def _types_agree(mention: Mention, entity: Entity) -> bool:
        return mention.type is None or mention.type == entity.type

    def _hint_vector(self, hint: str) -> np.ndarray:
        if hint not in self._hint_vectors:
            self._hint_vectors[hint] = self.embedder.embed([hint])[0]
        return self._hint_vectors[hint]

    def hints_agree(self, a: str | None, b: str | None) -> bool:
        if not a or not b or name_key(a) == name_key(b):
            return True
        wa, wb = content_words(a), content_words(b)
        if wa and wb and (wa <= wb or wb <= wa):
            return True
        return float(self._hint_vector(a) @ self._hint_vector(b)) >= self.thresholds.hint_same

    def _ask(self, mention: Mention, candidates: list[Candidate]) -> tuple[Entity | None, bool]:
        """(chosen entity or None for new, whether the LM was asked)."""
        if self.confirm is None:
            return None, False
        for c in candidates:
            c.facts = self.facts_of(c.entity)[:3]
        choice = self.confirm(mention, candidates)
        return (candidates[choice].entity if choice is not None else None), True

    # -- the decision --------------------------------------------------------------------------------------
    def resolve(self, mention: Mention, user_id: str) -> Decision:
        exact = [e for e in self.entities if mention.key in self.keys(e) and self._types_agree(mention, e)]
        if exact:
            agreeing = [e for e in exact if self.hints_agree(mention.hint, e.hint)]
            if len(agreeing) == 1 and (len(exact) == 1 or mention.hint):
                return self._join(agreeing[0], mention)
            chosen, asked = self._ask(mention, [Candidate(e, 1.0) for e in exact])
            if chosen is not None:
                return self._join(chosen, mention, asked=True)
            if not asked and not mention.hint:
                return self._join(max(exact, key=lambda e: (e.updated_at, e.id)), mention)
            if not asked and len(agreeing) > 1:
                return self._join(max(agreeing, key=lambda e: (e.updated_at, e.id)), mention)
            return self._new(mention, user_id, asked=asked)
        similar = self._similar(mention)
        if similar and similar[0].score >= self.thresholds.same and \
                self.hints_agree(mention.hint, similar[0].entity.hint):
            return self._join(similar[0].entity, mention)
        maybe = [c for c in similar if c.score >= self.thresholds.maybe][:3]
        if maybe:
            chosen, asked = self._ask(mention, maybe)
            if chosen is not None:
                return self._join(chosen, mention, asked=True)
            return self._new(mention, user_id, asked=asked)
        return self._new(mention, user_id)

    def _similar(self, mention: Mention) -> list[Candidate]:
        if not self.vectors:
            return []
        sims = np.stack(self.vectors) @ mention.vector
        out = [Candidate(e, float(s)) for e, s in zip(self.entities, sims, strict=True)
               if self._types_agree(mention, e)]
        return sorted(out, key=lambda c: -c.score)

    def _join(self, entity: Entity, mention: Mention, *, asked: bool = False) -> Decision:
        """Match: the entity learns the mention's spelling as an alias, and its hint if it had none."""
        changes: dict[str, object] = {}
        if mention.key not in self.keys(entity):  # a new spelling ("NYC" for "New York"), not a new case
            changes["aliases"] = [*entity.aliases, mention.name]
        if mention.hint and not entity.hint:
            changes["hint"] = mention.hint
        if entity.type == "thing" and mention.type not in (None, "thing"):
            changes["type"] = mention.type
        if not changes:
            return Decision(entity=entity, new=False, asked=asked)
        updated = entity.model_copy(update=changes)
        self.entities[self.entities.index(entity)] = updated
        return Decision(entity=updated, new=False, changed=True, asked=asked)

    def _new(self, mention: Mention, user_id: str, *, asked: bool = False) -> Decision:
        entity = Entity(user_id=user_id, name=mention.name, type=mention.type or "thing", hint=mention.hint)
        self.entities.append(entity)
        self.vectors.append(mention.vector)
        return Decision(entity=entity, new=True, asked=asked)
