"""``remem serve`` (REST API + web page + MCP at /mcp), ``remem mcp`` (stdio or streamable HTTP) and
``remem keys create|list|revoke`` (API keys, usable while the server runs). No logic: see :mod:`remem.server`."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ..bounds import check_float, check_int, check_label
from ..config import Settings
from ..errors import ConfigurationError, StoreLockedError, ValidationError

if TYPE_CHECKING:
    from ..memory import Memory
    from ..server import ServerConfig
    from ..server.auth import KeyStore
from ..render import cell
from ..validation import check_user_id
from .app import app, console

keys_app = typer.Typer(help="Manage API keys (stored hashed under REMEM_HOME; the key is shown once).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Data directory (default: REMEM_HOME or ~/.remem).")]
EmbedderOpt = Annotated[str | None, typer.Option("--embedder", help="Embedder spec (default: REMEM_EMBEDDER).")]


def _home(home: Path | None) -> Path:
    return Path(Settings.from_env(home=home).home).expanduser()


def _keys(home: Path | None) -> KeyStore:
    """The key table of the configured deployment (Postgres with REMEM_DATABASE_URL, else the key file)."""
    from ..server.auth import KeyStore

    return KeyStore.for_settings(Settings.from_env(home=home))


def _open_memory(home: Path | None, embedder: str | None, lm: str | None = None) -> Memory:
    from ..memory import Memory

    try:
        return Memory(home, embedder=embedder, lm=lm)
    except StoreLockedError as exc:
        raise StoreLockedError(
            f"{_home(home)} is already open in another process (a running `remem serve`/`remem mcp`?). The embedded"
            " store allows one process per data directory: stop that process, point this one at another --home,"
            " or use a Qdrant server (REMEM_QDRANT_URL) for several processes.", **exc.context
        ) from exc


LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


def _check_server_options(max_body_bytes: int | None, rate_limit: float | None, rate_burst: int | None,
                          mcp_user: str | None) -> None:
    """Bad option values are bad input (exit 2), not a configuration error found later."""
    if max_body_bytes is not None:
        check_int(max_body_bytes, "--max-body-bytes", minimum=1, maximum=2**30)
    if rate_limit is not None:
        check_float(rate_limit, "--rate-limit", minimum=0.0, maximum=1e6)
    if rate_burst is not None:
        check_int(rate_burst, "--rate-burst", minimum=0, maximum=1_000_000)
    if mcp_user is not None:
        check_user_id(mcp_user)


def _log_setup(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(message)s")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    home: HomeOpt = None,
    embedder: EmbedderOpt = None,
    lm: Annotated[str | None, typer.Option(help="LM for infer=true and /chat (default: REMEM_LM).")] = None,
    max_body_bytes: Annotated[int | None, typer.Option(help="Largest request body (REMEM_MAX_BODY_BYTES).")] = None,
    rate_limit: Annotated[float | None, typer.Option(help="Requests/s per key, 0 = off (REMEM_RATE_LIMIT).")] = None,
    rate_burst: Annotated[int | None, typer.Option(help="Burst per key (REMEM_RATE_BURST).")] = None,
    mcp_user: Annotated[str | None, typer.Option(help="User of /mcp calls without an X-Remem-User header (default: "
                                                 "none, such calls are refused).")] = None,
    no_mcp: Annotated[bool, typer.Option("--no-mcp", help="Do not serve MCP at /mcp.")] = False,
    log_requests_debug: Annotated[bool, typer.Option("--log-debug", help="Log raw paths and queries.")] = False,
    log_level: Annotated[LogLevel, typer.Option(help="Log level.")] = "info",
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (needs REMEM_DATABASE_URL and "
                                         "REMEM_STORE=pgvector or a Qdrant server).")] = 1,
) -> None:
    """Serve the REST API (/v1, OpenAPI at /docs), the web page (/ui) and MCP (/mcp); with --workers N, N
    processes on one shared database."""
    import uvicorn

    from ..server import ServerConfig, create_app

    _check_server_options(max_body_bytes, rate_limit, rate_burst, mcp_user)
    check_label(host, "--host", max_len=255)
    _log_setup(log_level)
    if workers > 1:
        _serve_workers(workers, host=host, port=port, home=home, embedder=embedder, lm=lm, log_level=log_level,
                       config=ServerConfig.from_env(max_body_bytes=max_body_bytes, rate_limit=rate_limit,
                                                    rate_burst=rate_burst, debug=log_requests_debug, mcp=not no_mcp,
                                                    mcp_user=mcp_user, host=host))
        return
    sock = _bind(host, port)  # before "serving" is printed: a port in use is one clear error
    try:
        memory = _open_memory(home, embedder, lm)
        keys = _keys(home)
    except BaseException:
        sock.close()
        raise
    try:
        config = ServerConfig.from_env(max_body_bytes=max_body_bytes, rate_limit=rate_limit, rate_burst=rate_burst,
                                       debug=log_requests_debug, mcp=not no_mcp, mcp_user=mcp_user,
                                       host=host)
        api = create_app(memory, keys, config)
        if not any(k.revoked_at is None for k in keys.list()):
            console.print("[yellow]no API keys yet:[/] create one with `remem keys create --tenant <name>`")
        console.print(f"remem serving {memory.home} on http://{host}:{port}  (web page: /ui, API docs: /docs)")
        server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, access_log=False, log_level=log_level))
        server.run(sockets=[sock])
    finally:
        sock.close()
        memory.close()
        keys.close()


def _bind(host: str, port: int) -> socket.socket:
    """The server's socket, bound to ``host:port`` (``ConfigurationError`` naming the address and the OS's reason
    when it cannot be: a port in use, an address not on this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _serve_workers(workers: int, *, host: str, port: int, home: Path | None, embedder: str | None, lm: str | None,
                   log_level: str, config: ServerConfig) -> None:
    """Run ``workers`` uvicorn processes, each building its app from the environment (server/factory.py)."""
    import os

    import uvicorn

    from ..server.factory import CONFIG_VAR, LOG_LEVEL_VAR, require_shared

    settings = Settings.from_env(home=home, embedder=embedder, lm=lm)
    try:
        require_shared(settings, workers)
    except ConfigurationError as exc:  # an option this deployment cannot honour: a usage error (exit 2)
        raise ValidationError(str(exc)) from None
    for name, value in (("REMEM_HOME", home), ("REMEM_EMBEDDER", embedder), ("REMEM_LM", lm)):
        if value is not None:
            os.environ[name] = str(value)
    os.environ[CONFIG_VAR] = config.model_dump_json()
    os.environ[LOG_LEVEL_VAR] = log_level
    console.print(f"remem serving {settings.store} + {settings.database_url and 'postgres'} with {workers} "
                  f"workers on http://{host}:{port}")
    uvicorn.run("remem.server.factory:create_from_env", factory=True, workers=workers, host=host, port=port,
                access_log=False, log_level=log_level)


@app.command("mcp")
def mcp_command(
    transport: Annotated[Literal["stdio", "http"], typer.Option(help="stdio or streamable HTTP.")] = "stdio",
    user: Annotated[str | None, typer.Option(help="stdio: the user whose memories the tools read and write "
                                             "(default: 'default'). http: the user of calls without an "
                                             "X-Remem-User header (default: none, such calls are refused).")] = None,
    tenant: Annotated[str | None, typer.Option(help="stdio: store the user inside this tenant.")] = None,
    host: Annotated[str, typer.Option(help="http: interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="http: port.", min=1, max=65535)] = 8765,
    home: HomeOpt = None,
    embedder: EmbedderOpt = None,
) -> None:
    """MCP server. stdio: tools act for --user. http: at /mcp, a tenant API key is required and the user is the
    X-Remem-User header, else --user when given (else the call is refused). The model can never choose the user."""
    from ..server.mcp import build_mcp_server, fixed_user, standalone_http_app

    if user is not None:
        check_user_id(user)
    check_label(host, "--host", max_len=255)
    _log_setup("warning")  # stderr only: stdout carries the stdio protocol
    memory = _open_memory(home, embedder)
    try:
        if transport == "stdio":
            server = build_mcp_server(memory, fixed_user(user or "default", tenant), static_profile=True)
            server.run("stdio")
        else:
            import uvicorn

            from ..server.auth import KeyStore

            keys = KeyStore.for_settings(memory.settings)
            uvicorn.run(standalone_http_app(memory, keys, default_user=user, host=host), host=host, port=port,
                        log_level="warning")
    finally:
        memory.close()


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str | None, typer.Option(help="Tenant of the key (a-z 0-9 _ -).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key (manages keys, reads no memories).")] = False,
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    home: HomeOpt = None,
) -> None:
    """Create a key and print it (shown this once; only its hash is stored)."""

    keys = _keys(home)
    created = keys.create(role="admin" if admin else "tenant", tenant=None if admin else tenant, label=label)
    keys.close()
    who = "admin" if admin else f"tenant {created.tenant}"
    console.print(f"created key {created.key_id} for {who}. Store it now, it is not shown again:",
                  highlight=False)
    print(created.api_key)


@keys_app.command("list")
def keys_list(home: HomeOpt = None) -> None:
    """List keys (ids, tenants, state; never the keys)."""
    from rich.table import Table


    keys = _keys(home)
    table = Table("key id", "role", "tenant", "label", "created", "revoked")
    for k in keys.list():
        table.add_row(cell(k.key_id), k.role, cell(k.tenant or ""), cell(k.label or ""),
                      k.created_at.isoformat(timespec="seconds"),
                      k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "")
    keys.close()
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (from `remem keys list`).")],
                home: HomeOpt = None) -> None:
    """Revoke a key: it stops working at once, also in a running server."""

    keys = _keys(home)
    info = keys.revoke(key_id)
    keys.close()
    console.print(f"revoked {info.key_id}")
