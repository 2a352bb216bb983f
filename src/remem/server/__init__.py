"""Serving remem: a REST API with tenant keys (:mod:`.app`), an MCP server (:mod:`.mcp`) and a web page
(``static/``, served at ``/ui``). These layers hold no logic: they call :class:`remem.Memory` and translate
:class:`remem.errors.RememError` into HTTP/MCP errors at the edge.

Tenants: an API key belongs to one tenant; a tenant is a namespace of user ids. The user id ``alice`` of tenant
``acme`` is stored as the remem user id ``acme:alice`` (see :mod:`.tenancy`). Tenant names cannot contain ``:``,
so the prefix is unambiguous and no key can name a user of another tenant.
"""

from __future__ import annotations

from .app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
