"""How a tenant's user ids map to remem user ids, and back.

A tenant's user ``alice`` is the remem user ``<tenant>:alice``. Tenant names match ``[a-z0-9][a-z0-9_-]{0,31}``
(no ``:``), so the first ``:`` of a stored id always ends the tenant: ``acme:x:y`` is user ``x:y`` of ``acme``
and can never be reached through tenant ``acme:x`` (which is not a valid tenant name). Every route maps the path's
user id with :func:`internal_user` before calling :class:`remem.Memory`, which then scopes every read and write
to that one user; results are mapped back with :func:`external_user` so clients only see their own ids.
"""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import BaseModel

from ..bounds import shown
from ..errors import InvalidUserIdError, ValidationError
from ..models import Context, HistoryEvent, MemoryRecord, Page, SearchHit
from ..validation import check_user_id

TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

M = TypeVar("M", bound=BaseModel)


def check_tenant(name: object) -> str:
    if not isinstance(name, str) or not TENANT.fullmatch(name):
        raise ValidationError(
            f"invalid tenant name {shown(name)}: 1-32 characters from a-z 0-9 _ - (starting with a letter or digit)",
            field="tenant",
        )
    return name


def internal_user(tenant: str, user_id: str) -> str:
    """The remem user id of ``user_id`` in ``tenant`` (validated as a whole)."""
    check_user_id(user_id)
    full = f"{tenant}:{user_id}"
    if len(full) > 128:
        raise InvalidUserIdError(
            f"user id {shown(user_id)} is too long: at most {127 - len(tenant)} characters for this tenant",
            user_id=user_id,
        )
    return check_user_id(full)


def external_user(tenant: str, stored: str) -> str:
    prefix = f"{tenant}:"
    if not stored.startswith(prefix):  # records are fetched filtered on this tenant's user: this is a bug
        raise RuntimeError("a record of another tenant reached the edge")
    return stored[len(prefix):]


def tenant_users(tenant: str, all_users: list[str]) -> list[str]:
    prefix = f"{tenant}:"
    return sorted(u[len(prefix):] for u in all_users if u.startswith(prefix))


def out_record(tenant: str, record: MemoryRecord) -> MemoryRecord:
    return record.model_copy(update={"user_id": external_user(tenant, record.user_id)})


def out_hit(tenant: str, hit: SearchHit) -> SearchHit:
    return hit.model_copy(update={"record": out_record(tenant, hit.record)})


def out_page(tenant: str, page: Page) -> Page:
    return page.model_copy(update={"items": [out_record(tenant, r) for r in page.items]})


def out_event(tenant: str, event: HistoryEvent) -> HistoryEvent:
    snap = out_record(tenant, event.snapshot) if event.snapshot is not None else None
    return event.model_copy(update={"user_id": external_user(tenant, event.user_id), "snapshot": snap})


def out_context(tenant: str, context: Context) -> Context:
    items = [i.model_copy(update={"records": [out_record(tenant, r) for r in i.records]}) for i in context.items]
    return context.model_copy(update={"user_id": external_user(tenant, context.user_id), "items": items})
