"""``/v1/admin``: key management with the admin key (the same operations as ``remem keys ...``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from .auth import CreatedKey, KeyInfo, KeyStore
from .deps import AdminDep
from .routes import ERRORS
from .schemas import KeyCreateBody

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERRORS)


def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


@router.post("/keys", response_model=CreatedKey, status_code=201)
def create_key(body: KeyCreateBody, who: AdminDep, request: Request) -> CreatedKey:
    """Create a key; the response holds the key itself, shown this one time."""
    return _keys(request).create(role=body.role, tenant=body.tenant, label=body.label)


@router.get("/keys", response_model=list[KeyInfo])
def list_keys(who: AdminDep, request: Request) -> list[KeyInfo]:
    return _keys(request).list()


@router.delete("/keys/{key_id}", response_model=KeyInfo)
def revoke_key(key_id: Annotated[str, Path(max_length=64, description="The key id (from the key list).")],
               who: AdminDep, request: Request) -> KeyInfo:
    return _keys(request).revoke(key_id)
