"""The MCP server driven by the SDK's own client: in-process, over stdio (a real `remem mcp` subprocess) and
over streamable HTTP (the /mcp endpoint of a running server, with tenant keys)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from remem import Memory
from remem.server.mcp import build_mcp_server, fixed_user
from test_server_support import running_server

TOOLS = {"add_memory", "search_memories", "get_context", "list_memories", "update_memory", "delete_memory"}


def payload(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        data = result.structured_content
        return data.get("result", data) if isinstance(data, dict) and set(data) == {"result"} else data
    return json.loads(result.content[0].text)


def error_text(result: Any) -> str:
    assert result.is_error
    return str(result.content[0].text)


async def test_tools_in_process_act_only_for_the_configured_user(fake_memory: Memory) -> None:
    fake_memory.add("Bob's PIN is 9999", user_id="bob")
    server = build_mcp_server(fake_memory, fixed_user("alice"), static_profile=True)
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        for t in tools:  # no tool lets the model name a user
            assert not {"user", "user_id", "userId"} & set(t.input_schema.get("properties", {}))
        added = payload(await client.call_tool("add_memory", {"text": "Alice is vegetarian",
                                                              "categories": ["food"]}))
        mid = added["events"][0]["memory_id"]
        assert added["events"][0]["event"] == "ADD"
        hits = payload(await client.call_tool("search_memories", {"query": "vegetarian food", "limit": 5}))
        assert hits[0]["id"] == mid and hits[0]["categories"] == ["food"]
        others = payload(await client.call_tool("search_memories", {"query": "Bob PIN 9999"}))
        assert [h["id"] for h in others] == [mid]  # alice's one memory, never bob's
        ctx = payload(await client.call_tool("get_context", {"query": "Bob PIN 9999 vegetarian", "max_tokens": 60}))
        assert ctx["text"].startswith("## Relevant memories\n- ") and "Alice is vegetarian" in ctx["text"]
        assert "9999" not in ctx["text"] and 0 < ctx["tokens"] <= 60 and ctx["items"][0]["memory_ids"] == [mid]
        assert "max_tokens" in error_text(await client.call_tool("get_context", {"query": "x", "max_tokens": 0}))
        # Even an extra argument naming another user is not a way in.
        sneaky = await client.call_tool("list_memories", {"user_id": "bob"})
        assert sneaky.is_error or all("9999" not in i["text"] for i in payload(sneaky)["items"])
        listed = payload(await client.call_tool("list_memories", {"category": "food"}))
        assert listed["total"] == 1 and listed["items"][0]["text"] == "Alice is vegetarian"
        updated = payload(await client.call_tool("update_memory", {"memory_id": mid, "text": "Alice is vegan"}))
        assert updated["version"] == 2
        profile = await client.read_resource("remem://profile")
        assert "Alice is vegan" in profile.contents[0].text and "9999" not in profile.contents[0].text
        assert payload(await client.call_tool("delete_memory", {"memory_id": mid}))["deleted"] is True
        assert "not_found" in error_text(await client.call_tool("delete_memory", {"memory_id": mid}))
        bob_id = fake_memory.list(user_id="bob").items[0].id
        assert "not_found" in error_text(await client.call_tool("update_memory", {"memory_id": bob_id,
                                                                                  "text": "hacked"}))
        assert "invalid_input" in error_text(await client.call_tool("add_memory", {"text": "   "}))
    assert fake_memory.get(bob_id, user_id="bob").text == "Bob's PIN is 9999"
    assert [e.event.value for e in fake_memory.history(mid, user_id="alice")] == ["ADD", "UPDATE", "DELETE"]


async def test_add_memory_with_infer_in_the_background(fake_memory: Memory) -> None:
    from remem.pipeline import Pipeline, ScriptedLM

    lm = ScriptedLM({"MemoryExtract": [{"facts": [{"text": "Alice is vegetarian", "categories": ["food"]}]}]})
    pipeline = Pipeline(fake_memory, lm)
    server = build_mcp_server(fake_memory, fixed_user("alice"))
    async with Client(server) as client:
        added = payload(await client.call_tool("add_memory", {"text": "I stopped eating meat", "infer": True,
                                                              "background": True}))
        assert added["pending"] is True and added["job_id"] and added["events"] == []
        assert pipeline.wait(30)
        assert "invalid_input: background=True applies to infer=True" in error_text(
            await client.call_tool("add_memory", {"text": "x", "background": True}))
    assert sorted(r.text for r in fake_memory.list(user_id="alice").items) == [
        "Alice is vegetarian", "I stopped eating meat"]


async def test_stdio_subprocess(tmp_path: Path) -> None:
    home = tmp_path / "stdio-home"
    env = {**os.environ, "REMEM_EMBEDDER": "fake", "PYTHONUNBUFFERED": "1"}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "remem.cli", "mcp", "--user", "alice", "--tenant", "acme",
                                      "--home", str(home)], env=env)
    async with Client(params) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        payload(await client.call_tool("add_memory", {"text": "Alice flies to Oslo in May"}))
        hits = payload(await client.call_tool("search_memories", {"query": "Oslo"}))
        assert hits[0]["text"] == "Alice flies to Oslo in May"
        profile = await client.read_resource("remem://profile")
        assert "Oslo" in profile.contents[0].text
    with Memory(home, embedder="fake") as m:  # the subprocess has exited: the store lock is free
        assert [r.text for r in m.list(user_id="acme:alice").items] == ["Alice flies to Oslo in May"]
        assert m.users() == ["acme:alice"]


async def _session_call(url: str, headers: dict[str, str], tool: str, args: dict[str, Any]) -> Any:
    async with create_mcp_http_client(headers=headers) as http, \
            streamable_http_client(url, http_client=http) as streams, \
            ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        return await session.call_tool(tool, args)


async def test_streamable_http_uses_the_key_tenant_and_connection_user(tmp_path: Path) -> None:
    import httpx

    with running_server(tmp_path / "home") as srv:
        url = srv.url + "/mcp"
        a_alice = {"X-API-Key": srv.key_a, "X-Remem-User": "alice"}
        added = payload(await _session_call(url, a_alice, "add_memory", {"text": "Alice owns a red bike"}))
        mid = added["events"][0]["memory_id"]
        hits = payload(await _session_call(url, a_alice, "search_memories", {"query": "bike"}))
        assert [h["id"] for h in hits] == [mid]
        # Same user name, other tenant: nothing; and the id is not found.
        b_alice = {"Authorization": f"Bearer {srv.key_b}", "X-Remem-User": "alice"}
        assert payload(await _session_call(url, b_alice, "search_memories", {"query": "bike"})) == []
        gone = await _session_call(url, b_alice, "delete_memory", {"memory_id": mid})
        assert "not_found" in error_text(gone)
        # REST sees what MCP wrote, in tenant acme.
        with srv.client(srv.key_a) as c:
            assert c.get(f"/v1/users/alice/memories/{mid}").json()["text"] == "Alice owns a red bike"
        assert srv.memory.get(mid, user_id="acme:alice").deleted_at is None
        # No key, a wrong key or the admin key: refused before any MCP session exists, as JSON.
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        accept = {"Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient() as raw:
            for headers, status in [({}, 401), ({"X-API-Key": "nope"}, 401), ({"X-API-Key": srv.admin}, 403)]:
                r = await raw.post(url, json=init, headers={**accept, **headers})
                assert r.status_code == status and r.json()["error"] in ("unauthorized", "forbidden")


async def test_http_without_a_user_header_is_refused_unless_the_operator_named_a_default(tmp_path: Path) -> None:
    """Review 2, issue 14: a request without X-Remem-User silently used a shared user "default", so every
    header-less client of a tenant read and wrote the same memories."""
    import httpx

    from remem.server import ServerConfig

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    with running_server(tmp_path / "home") as srv:
        async with httpx.AsyncClient() as raw:
            r = await raw.post(srv.url + "/mcp", json=init, headers={**accept, "X-API-Key": srv.key_a})
        assert r.status_code == 422 and r.json()["error"] == "invalid_input"
        assert r.json()["message"].startswith("no X-Remem-User header: set it in the MCP client's configuration")
        assert srv.memory.users() == []
    with running_server(tmp_path / "home2", ServerConfig(rate_limit=0, mcp_user="alice")) as srv:
        added = payload(await _session_call(srv.url + "/mcp", {"X-API-Key": srv.key_a}, "add_memory",
                                            {"text": "Alice owns a red bike"}))
        assert added["events"][0]["event"] == "ADD"
        assert srv.memory.users() == ["acme:alice"]  # the operator's default, inside the key's tenant


def test_header_resolver_refuses_a_missing_user(tmp_path: Path) -> None:
    from remem import ValidationError
    from remem.server.mcp import user_header

    assert user_header({"X-Remem-User": "bob"}, None) == "bob"
    assert user_header({"x-remem-user": "bob"}, "alice") == "bob"
    assert user_header({}, "alice") == "alice"
    with pytest.raises(ValidationError, match="no X-Remem-User header"):
        user_header({"X-Remem-User": ""}, None)


@pytest.mark.parametrize("tenant", [None, "acme"])
def test_fixed_user_maps_into_the_tenant(tenant: str | None) -> None:
    resolve = fixed_user("alice", tenant)
    assert resolve(None) == ("acme:alice" if tenant else "alice")
