"""Graph memory through its surfaces: REST over real HTTP (uvicorn in a thread), the MCP SDK client in-process,
and the ``remem graph`` command. Isolation between users and tenants on every route and tool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from remem import Memory
from remem.cli import main
from remem.server.mcp import build_mcp_server, fixed_user
from test_server_support import Running, running_server

ALICE = "/v1/users/alice/graph"


@pytest.fixture
def srv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.setenv("REMEM_GRAPH", "1")
    with running_server(tmp_path / "home") as running:
        yield running


def rel(c: httpx.Client, path: str, subject: Any, relation: str, obj: Any, **extra: Any) -> dict[str, Any]:
    r = c.post(f"{path}/relations", json={"subject": subject, "relation": relation, "object": obj, **extra})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_graph_routes_build_walk_close_delete_and_restore(srv: Running) -> None:
    with srv.client(srv.key_a) as c:
        sister = rel(c, ALICE, {"name": "Maya", "type": "person"}, "sister_of", {"name": "Alice", "type": "person"},
                     source_ids=["t1"])
        assert sister["created"] is True and sister["relation"]["user_id"] == "alice"
        assert [e["snapshot"]["user_id"] for e in sister["events"]] == ["alice"] * 3  # no tenant prefix leaks
        berlin = rel(c, ALICE, "Alice", "lives_in", {"name": "Berlin", "type": "place"},
                     valid_from="2020-01-01T00:00:00Z")["relation"]
        moved = rel(c, ALICE, "Alice", "lives_in", {"name": "Lisbon", "type": "place"},
                    valid_from="2024-03-01T00:00:00Z", source_ids=["t2"])
        assert [r["id"] for r in moved["closed"]] == [berlin["id"]]
        found = c.post(f"{ALICE}/search", json={"query": "Maya", "hops": 2}).json()
        assert [f["text"] for f in found["facts"]] == [
            "Maya is sister of Alice", "Alice lives in Lisbon (since 2024-03-01)",
            "Alice lives in Berlin (from 2020-01-01 until 2024-03-01)"]
        assert found["facts"][1]["source_ids"] == ["t2"] and found["matched"][0]["name"] == "Maya"
        past = c.post(f"{ALICE}/search", json={"query": "Alice", "as_of": "2023-01-01T00:00:00"}).json()
        assert [f["text"] for f in past["facts"]] == ["Maya is sister of Alice",
                                                      "Alice lives in Berlin (from 2020-01-01 until 2024-03-01)"]
        lisbon = moved["relation"]["id"]
        closed = c.post(f"{ALICE}/relations/{lisbon}/close", json={"reason": "moved on"}).json()
        assert closed["valid_to"] is not None and closed["expired_at"] is not None
        assert c.post(f"{ALICE}/relations/{lisbon}/close").status_code == 422  # already ended
        gone = c.delete(f"{ALICE}/relations/{sister['relation']['id']}", params={"reason": "wrong"}).json()
        assert gone["deleted_at"] is not None
        view = c.get(ALICE).json()
        assert len(view["entities"]) == 4 and sister["relation"]["id"] not in [r["id"] for r in view["relations"]]
        assert len(c.get(ALICE, params={"deleted": "true"}).json()["relations"]) == 3
        c.post(f"{ALICE}/relations/{sister['relation']['id']}/restore")
        events = c.get(f"{ALICE}/relations/{sister['relation']['id']}/history").json()["events"]
        assert [e["event"] for e in events] == ["ADD", "DELETE", "RESTORE"]
        assert [(e["event"], e["reason"]) for e in c.get(f"{ALICE}/relations/{lisbon}/history").json()["events"]] \
            == [("ADD", None), ("CLOSE", "moved on")]
        assert c.get(f"{ALICE}/relations/{lisbon}").json()["relation"] == "lives_in"
        maya_id = sister["relation"]["subject_id"]
        assert c.get(f"{ALICE}/entities/{maya_id}").json()["name"] == "Maya"
        assert [e["event"] for e in c.get(f"{ALICE}/entities/{maya_id}/history").json()["events"]] == ["ADD"]
        other = rel(c, ALICE, {"name": "Maya S.", "type": "person"}, "likes", "surfing")["relation"]["subject_id"]
        merged = c.post(f"{ALICE}/entities/{maya_id}/merge", json={"other_id": other}).json()
        assert merged["aliases"] == ["Maya S."]
        # memory search fuses graph facts on request
        hits = c.post("/v1/users/alice/search", json={"query": "Maya", "graph": True}).json()["hits"]
        assert hits[0]["record"]["categories"] == ["graph"] and hits[0]["record"]["user_id"] == "alice"
        # bad input: 422 naming the field, never 500
        bad = c.post(f"{ALICE}/relations", json={"subject": "A", "relation": "Is The Best Friend Of, Sadly",
                                                 "object": "B"})
        assert bad.status_code == 422 and "snake_case" in bad.json()["message"]
        assert c.post(f"{ALICE}/search", json={"query": "Alice", "hops": 9}).status_code == 422
        assert c.post(f"{ALICE}/search", json={"query": "A", "timezone": "Mars/Base"}).status_code == 422
        assert c.post(f"{ALICE}/relations/not-an-id/close").status_code == 404
        # the export carries the graph
        lines = c.get("/v1/users/alice/export").text.splitlines()
        assert sum('"type": "relation"' in line for line in lines) == 4


def test_every_graph_route_is_isolated_between_users_and_tenants(srv: Running) -> None:
    with srv.client(srv.key_a) as c:
        mine = rel(c, ALICE, {"name": "Alice", "type": "person"}, "lives_in", {"name": "Lisbon", "type": "place"})
    rid, eid = mine["relation"]["id"], mine["relation"]["subject_id"]
    for key, user in ((srv.key_a, "bob"), (srv.key_b, "alice")):  # another user of acme; alice of tenant beta
        base = f"/v1/users/{user}/graph"
        with srv.client(key) as c:
            assert c.get(base).json() == {"entities": [], "relations": []}
            assert c.post(f"{base}/search", json={"query": "Alice", "hops": 2}).json() == {
                "matched": [], "facts": [], "labels": {}}
            assert c.post(f"{base}/search", json={"query": eid}).json()["facts"] == []
            for method, path, body in (("GET", f"/relations/{rid}", None), ("POST", f"/relations/{rid}/close", None),
                                       ("DELETE", f"/relations/{rid}", None),
                                       ("POST", f"/relations/{rid}/restore", None),
                                       ("GET", f"/relations/{rid}/history", None), ("GET", f"/entities/{eid}", None),
                                       ("GET", f"/entities/{eid}/history", None),
                                       ("POST", f"/entities/{eid}/merge", {"other_id": eid + "x"}),
                                       ("POST", "/relations", {"subject": {"id": eid}, "relation": "likes",
                                                               "object": "tea"})):
                r = c.request(method, base + path, json=body)
                assert r.status_code == 404, (key, user, method, path, r.text)
    assert srv.memory.graph.relation(rid, user_id="acme:alice").is_open  # nothing reached it
    with srv.client() as c:
        assert c.get(ALICE).status_code == 401


def test_graph_routes_answer_503_when_graph_memory_is_off(tmp_path: Path) -> None:
    with running_server(tmp_path / "off") as off, off.client(off.key_a) as c:
        r = c.get(ALICE)
        assert r.status_code == 503 and "REMEM_GRAPH=1" in r.json()["message"]
        assert c.post("/v1/users/alice/search", json={"query": "x", "graph": True}).status_code == 503


async def test_mcp_search_graph_tool_is_bound_to_the_connection_user(tmp_path: Path) -> None:
    with Memory(tmp_path / "mcp", embedder="fake", graph=True) as memory:
        g = memory.graph
        g.add({"name": "Maya", "type": "person"}, "sister_of", {"name": "Alice", "type": "person"}, user_id="alice",
              source_ids=["t1"])
        g.add("Maya", "lives_in", {"name": "Lisbon", "type": "place"}, user_id="alice", source_ids=["t2"])
        g.add({"name": "Alice", "type": "person"}, "pin_is", {"name": "9999"}, user_id="bob")
        async with Client(build_mcp_server(memory, fixed_user("alice"))) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert "search_graph" in tools
            assert not {"user", "user_id"} & set(tools["search_graph"].input_schema["properties"])
            result = await client.call_tool("search_graph", {"entity_or_text": "Alice's sister", "hops": 2})
            assert not result.is_error
            data = result.structured_content
            assert data is not None
            data = data.get("result", data)
            assert [f["text"] for f in data["facts"]] == ["Maya is sister of Alice", "Maya lives in Lisbon"]
            assert data["facts"][1]["source_ids"] == ["t2"] and data["matched"] == ["Alice"]
            sneaky = await client.call_tool("search_graph", {"entity_or_text": "9999 pin", "user_id": "bob"})
            assert sneaky.is_error or "9999" not in json.dumps(sneaky.structured_content)
            bad = await client.call_tool("search_graph", {"entity_or_text": "Alice", "as_of": "soon"})
            assert bad.is_error and "invalid_input" in bad.content[0].text
    with Memory(tmp_path / "mcp-off", embedder="fake") as plain:
        async with Client(build_mcp_server(plain, fixed_user("alice"))) as client:
            assert "search_graph" not in {t.name for t in (await client.list_tools()).tools}


def test_remem_graph_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    monkeypatch.setenv("COLUMNS", "200")
    home = tmp_path / "cli"
    with Memory(home, graph=True) as memory:
        memory.graph.add({"name": "Alice", "type": "person"}, "lives_in", {"name": "Berlin", "type": "place"},
                         user_id="alice", source_ids=["t1"])
        memory.graph.add("Alice", "lives_in", {"name": "Lisbon", "type": "place"}, user_id="alice",
                         source_ids=["t2"], observed_at=__import__("datetime").datetime(2024, 3, 1))
        memory.graph.add({"name": "Bob", "type": "person"}, "lives_in", "Oslo", user_id="bob")

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main(["graph", "--home", str(home), *args])
        out = capsys.readouterr()
        return int(exc.value.code or 0), out.out, out.err

    code, out, _ = run("-u", "alice", "Alice")
    assert code == 0 and "Alice lives in Lisbon (since 2024-03-01)" in out and "Oslo" not in out
    assert "Alice lives in Berlin (until 2024-03-01)" in out and "t2" in out
    code, out, _ = run("-u", "alice", "Alice", "--as-of", "2023-01-01", "--json")
    assert code == 0 and [f["text"] for f in json.loads(out)["facts"]] == ["Alice lives in Berlin (until 2024-03-01)"]
    code, out, _ = run("-u", "alice")
    assert code == 0 and "graph of alice: 3 entities, 2 relations" in out and "ended" in out
    code, out, err = run("-u", "alice", "Alice", "--hops", "9")
    assert code == 2 and err.startswith("error:") and "hops" in err and "Traceback" not in err
    code, out, _ = run("-u", "carol")
    assert code == 0 and "no graph memory for carol" in out
