"""Request and response bodies of the REST API (results reuse :mod:`remem.models`).

Every request field is bounded here, so FastAPI answers 422 (naming the field in ``loc``) before the library is
called: JSON types as the schema says (``true`` is not a number, ``1`` is not a boolean, a number is not a date), strings without NUL or lone surrogates (labels also without control characters), lengths and counts,
finite numbers in range, datetimes whose UTC form exists, metadata within the limits of
:func:`remem.bounds.check_metadata`. The limits are those of :mod:`remem.bounds` and :mod:`remem.validation`
(README, "Input limits"); the text length (``REMEM_MAX_TEXT_CHARS``) is configurable, so the library checks it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    ValidationInfo,
)

from ..bounds import (
    MAX_CATEGORIES,
    MAX_CATEGORY_CHARS,
    MAX_LABEL_CHARS,
    MAX_REASON_CHARS,
    MAX_TEXT_CHARS_LIMIT,
    check_datetime,
    check_label,
    check_metadata,
    check_str,
    fail,
    refuse_epoch,
    shown,
)
from ..models import HistoryEvent, Message, SearchHit
from ..validation import MAX_LIMIT, MAX_MESSAGES
from .auth import Role


def _text(value: str, info: ValidationInfo) -> str:
    return check_str(value, info.field_name or "text", max_len=MAX_TEXT_CHARS_LIMIT)


def _label(value: str, info: ValidationInfo) -> str:
    return check_label(value, info.field_name or "value")


def _when(value: datetime, info: ValidationInfo) -> datetime:
    """A datetime whose UTC form exists (years 1-9999), kept as given: naive stays naive (the route reads it as
    wall time in the request's ``timezone``, else UTC) and an offset stays (the caller's calendar)."""
    check_datetime(value, info.field_name or "datetime")
    return value


def _number(value: object, info: ValidationInfo) -> object:
    """JSON numbers only: pydantic would read ``true`` or ``"0.5"`` as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(info.field_name or "number", f"must be a number, got {type(value).__name__}")
    return value


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    return check_metadata(value)


def _true_false(value: object) -> object:
    """A boolean query parameter is ``true`` or ``false`` (pydantic would also read 1, on, yes...)."""
    if isinstance(value, str) and value not in ("true", "false"):
        raise ValueError(f"must be true or false, got {shown(value, 30)}")
    return value


#: A boolean in a query string: ``true`` or ``false``.
QueryBool = Annotated[bool, BeforeValidator(_true_false)]
#: Free text (memory text, query, chat message, reason): no NUL, no lone surrogate.
Text = Annotated[str, AfterValidator(_text)]
#: A short name or id: at most 200 characters, no control characters.
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS), AfterValidator(_label)]
Category = Annotated[str, Field(min_length=1, max_length=MAX_CATEGORY_CHARS), AfterValidator(_label)]
Categories = Annotated[list[Category], Field(max_length=MAX_CATEGORIES)]
When = Annotated[datetime, BeforeValidator(refuse_epoch), AfterValidator(_when)]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
Reason = Annotated[str, Field(max_length=MAX_REASON_CHARS), AfterValidator(_text)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddBody(_Body):
    messages: Text | Annotated[list[Text | Message], Field(min_length=1, max_length=MAX_MESSAGES)] = Field(
        description="A string (one fact), or a list of strings/messages (raw: one memory each)."
    )
    infer: StrictBool = Field(False, description="Run the LLM pipeline (extract + maintain); needs a configured LM.")
    background: StrictBool = Field(False, description="With infer: answer once the turns are queued and stored as "
                                   "episodes (pending=true, job_id); a worker extracts and maintains the facts.")
    categories: Categories | None = None
    metadata: Metadata | None = Field(None, description="A JSON object (at most 16 KiB, 8 levels deep).")
    session_id: Label | None = None


class SearchBody(_Body):
    query: Text
    limit: Annotated[int, Strict()] = Field(10, ge=1, le=MAX_LIMIT)
    categories: Categories | None = None
    since: When | None = Field(None, description="Naive = UTC, or wall time in `timezone` when given.")
    until: When | None = Field(None, description="Naive = UTC, or wall time in `timezone` when given.")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    threshold: Annotated[float, BeforeValidator(_number)] | None = Field(
        None, ge=-1.0, le=1.0, allow_inf_nan=False, description="Minimum cosine similarity.")
    time_expressions: Literal["boost", "filter", "off"] = Field(
        "boost", description="What a time expression in the query ('yesterday', 'last week', 'in May') does "
                             "when since/until are not given: boost memories of that time, filter to it, or off.")
    reference_time: When | None = Field(
        None, description="The moment relative expressions are counted from (default: now); its offset, or "
                          "`timezone`, sets the calendar they are counted on. Naive = UTC.")
    timezone: str | None = Field(
        None, max_length=64, description="IANA time zone of the caller (e.g. Europe/Berlin): 'yesterday' is "
        "counted on its calendar (DST-exact). Default: the offset of reference_time, else UTC.")
    graph: Annotated[bool, Strict()] = Field(
        False, description="Fuse graph facts (dated sentences of the entities the query names) with the hits; "
                           "needs graph memory on (REMEM_GRAPH=1).")


class ContextBody(_Body):
    query: str
    max_tokens: Annotated[int, Strict()] = Field(1000, ge=1, le=200_000,
                                                 description="Hard cap on the cl100k tokens of the returned text.")
    categories: list[str] | None = None
    kinds: list[Literal["episode", "fact"]] | None = None
    since: datetime | None = None
    until: datetime | None = None
    reference_time: datetime | None = Field(None, description="'now' for time expressions in the query.")


class UpdateBody(_Body):
    text: Text | None = None
    categories: Categories | None = None
    metadata: Metadata | None = None
    observed_at: When | None = None
    reason: Reason | None = None


class ReasonBody(_Body):
    reason: Reason | None = None


class ChatBody(_Body):
    message: Text
    timezone: str | None = Field(
        None, max_length=64, description="IANA time zone of the user (e.g. Europe/Berlin): the agent sees the "
        "local time and counts 'yesterday' on that calendar. Default: UTC.")


class SearchResponse(BaseModel):
    hits: list[SearchHit]


class HistoryResponse(BaseModel):
    events: list[HistoryEvent]


class UsersResponse(BaseModel):
    users: list[str]


class ChatResponse(BaseModel):
    """``reply`` is the agent's answer; ``data`` the whole ``remem.pipeline.AgentReply`` (tool calls, memory
    events, usage)."""

    reply: str
    data: dict[str, Any] | None = None


class Health(BaseModel):
    status: str
    version: str


class Ready(BaseModel):
    status: str
    store: str
    embedder: str
    lm: bool


class Whoami(BaseModel):
    key_id: str
    role: Role
    tenant: str | None = None


class KeyCreateBody(_Body):
    role: Role = "tenant"
    tenant: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
                               description="Needed for a tenant key: a-z 0-9 _ - (1-32 characters).")
    label: Label | None = None


__all__ = ["AddBody", "ChatBody", "ChatResponse", "ContextBody", "Health", "HistoryResponse", "KeyCreateBody", "Message",
           "Ready", "ReasonBody", "SearchBody", "SearchResponse", "UpdateBody", "UsersResponse", "Whoami"]
