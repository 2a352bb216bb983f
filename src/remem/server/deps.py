"""Request dependencies: who is calling (API key → :class:`Principal`), rate limiting, and the user scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..errors import ForbiddenError
from ..memory import Memory
from .auth import KeyStore, Principal
from .limits import RateLimiter
from .tenancy import internal_user

#: The user id of a path (remem.validation.USER_ID, anchored for the OpenAPI schema).
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@:+\-]{0,127}$"

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


def get_memory(request: Request) -> Memory:
    memory: Memory = request.app.state.memory
    return memory


def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> Principal:
    keys: KeyStore = request.app.state.keys
    who = keys.authenticate(header or (bearer.credentials if bearer else None))
    request.state.key_id = who.key_id
    request.state.tenant = who.tenant
    limiter: RateLimiter = request.app.state.limiter
    limiter.check(who.key_id)
    return who


def tenant_principal(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if who.role != "tenant" or who.tenant is None:
        raise ForbiddenError("this route needs a tenant key (an admin key only manages keys)")
    return who


def admin_principal(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if who.role != "admin":
        raise ForbiddenError("this route needs the admin key")
    return who


@dataclass(frozen=True)
class UserScope:
    """The one user a request may touch: ``user`` as the tenant names it, ``internal`` as remem stores it."""

    tenant: str
    user: str
    internal: str
    actor: str


def user_scope(
    user_id: Annotated[str, Path(description="The user id within your tenant: 1-128 characters from A-Z a-z "
                                 "0-9 _ . @ : + - (starting with a letter or digit; together with the tenant name "
                                 "and a colon at most 128).", max_length=128, pattern=USER_ID_PATTERN)],
    who: Annotated[Principal, Depends(tenant_principal)],
) -> UserScope:
    assert who.tenant is not None
    return UserScope(tenant=who.tenant, user=user_id, internal=internal_user(who.tenant, user_id),
                     actor=f"api:{who.key_id}")


MemoryDep = Annotated[Memory, Depends(get_memory)]
ScopeDep = Annotated[UserScope, Depends(user_scope)]
TenantDep = Annotated[Principal, Depends(tenant_principal)]
AdminDep = Annotated[Principal, Depends(admin_principal)]
