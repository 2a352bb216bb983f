"""The REST API over real HTTP on loopback: a uvicorn server in a thread, fake embedder; the module's server runs
twice: edge store + SQLite history and keys, then pgvector store + history + keys in one Postgres database."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from remem.server import ServerConfig
from test_server_support import Running, running_server

SNAPSHOT = Path(__file__).with_name("openapi.json")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if request.param == "sqlite":
        with running_server(tmp_path_factory.mktemp("srv") / "home") as running:
            yield running
        return
    from conftest import create_database, drop_database

    server = request.getfixturevalue("postgres_server")
    url = create_database(server)
    try:
        with running_server(tmp_path_factory.mktemp("srv") / "home", database_url=url) as running:
            yield running
    finally:
        drop_database(server, url)


def add(c: httpx.Client, user: str, *texts: str, **extra: object) -> list[str]:
    r = c.post(f"/v1/users/{user}/memories", json={"messages": list(texts), **extra})
    assert r.status_code == 200, r.text
    return [e["memory_id"] for e in r.json()["events"]]


def test_health_and_readiness_need_no_key(srv: Running) -> None:
    with srv.client() as c:
        assert c.get("/v1/health").json()["status"] == "ok"
        ready = c.get("/v1/ready").json()
        assert ready["status"] == "ready" and ready["store"] == srv.memory.store.name and ready["lm"] is False


def test_memory_lifecycle_through_every_route(srv: Running) -> None:
    with srv.client(srv.key_a) as c:
        assert c.get("/v1/whoami").json()["tenant"] == "acme"
        ids = add(c, "life", "I live in Lisbon", "My dog is called Rex", categories=["Home"])
        assert len(ids) == 2
        page = c.get("/v1/users/life/memories", params={"limit": 1}).json()
        assert page["total"] == 2 and len(page["items"]) == 1 and page["next_offset"] == 1
        assert page["items"][0]["user_id"] == "life"  # the tenant prefix never leaves the server
        assert c.get("/v1/users/life/memories", params={"category": "home"}).json()["total"] == 2
        assert c.get("/v1/users/life/memories", params={"category": "work"}).json()["total"] == 0
        hits = c.post("/v1/users/life/search", json={"query": "Rex dog", "limit": 5}).json()["hits"]
        assert hits[0]["record"]["text"] == "My dog is called Rex"
        ctx = c.post("/v1/users/life/context", json={"query": "Rex dog", "max_tokens": 40}).json()
        assert ctx["user_id"] == "life" and 0 < ctx["tokens"] <= 40 and ctx["tokenizer"] == "cl100k_base"
        assert ctx["text"].startswith("## Relevant memories\n**") and "\n- user: My dog is called Rex" in ctx["text"]
        assert {r["user_id"] for i in ctx["items"] for r in i["records"]} == {"life"}
        assert c.post("/v1/users/life/context", json={"query": "Rex", "kinds": ["fact"]}).json()["items"] == []
        rec = c.patch(f"/v1/users/life/memories/{ids[0]}", json={"text": "I live in Porto", "reason": "moved"}).json()
        assert rec["id"] == ids[0] and rec["version"] == 2 and rec["text"] == "I live in Porto"
        assert c.get(f"/v1/users/life/memories/{ids[0]}").json()["text"] == "I live in Porto"
        assert c.delete(f"/v1/users/life/memories/{ids[0]}", params={"reason": "wrong"}).json()["deleted_at"]
        assert c.get(f"/v1/users/life/memories/{ids[0]}").status_code == 404
        trash = c.get("/v1/users/life/memories", params={"state": "deleted"}).json()
        assert [r["id"] for r in trash["items"]] == [ids[0]]
        assert c.post(f"/v1/users/life/memories/{ids[0]}/restore").json()["deleted_at"] is None
        events = c.get(f"/v1/users/life/memories/{ids[0]}/history").json()["events"]
        assert [e["event"] for e in events] == ["ADD", "UPDATE", "DELETE", "RESTORE"]
        assert events[1]["old_text"] == "I live in Lisbon" and events[1]["reason"] == "moved"
        assert all(e["user_id"] == "life" and e["actor"].startswith("api:") for e in events)
        export = c.get("/v1/users/life/export")
        assert export.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(x) for x in export.text.splitlines()]
        assert lines[0]["type"] == "header" and sum(x["type"] == "memory" for x in lines) == 2
        assert "life" in c.get("/v1/users").json()["users"]
        forgot = c.delete("/v1/users/life").json()
        assert forgot["user_id"] == "life" and forgot["memories"] == 2
        assert c.get("/v1/users/life/memories").json()["total"] == 0
        assert "life" not in c.get("/v1/users").json()["users"]


def test_duplicate_add_is_a_noop(srv: Running) -> None:
    with srv.client(srv.key_a) as c:
        add(c, "dup", "Likes tea")
        r = c.post("/v1/users/dup/memories", json={"messages": "likes  TEA"}).json()
        assert [e["event"] for e in r["events"]] == ["NOOP"]


def test_tenant_b_cannot_reach_tenant_a_through_any_route(srv: Running) -> None:
    with srv.client(srv.key_a) as a, srv.client(srv.key_b) as b:
        (mid,) = add(a, "alice", "Alice's secret is 1234")
        base = f"/v1/users/alice/memories/{mid}"
        # B names the same user id: that is B's own (empty) user, never A's.
        assert b.get("/v1/users/alice/memories", params={"state": "all"}).json()["total"] == 0
        assert b.post("/v1/users/alice/search", json={"query": "secret 1234"}).json()["hits"] == []
        assert b.post("/v1/users/alice/context", json={"query": "secret 1234"}).json()["text"] == ""
        for method, path, body in [("GET", base, None), ("GET", base + "?include_deleted=true", None),
                                   ("PATCH", base, {"text": "hacked"}), ("DELETE", base, None),
                                   ("POST", base + "/restore", None), ("GET", base + "/history", None)]:
            r = b.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.text)
            assert "1234" not in r.text and r.json()["error"] == "not_found"
        # Spelling A's stored id from B's side lands in B's namespace ("beta:acme:alice") or is refused.
        for user in ["acme:alice", "acme%3Aalice", "..%2Facme:alice"]:
            r = b.get(f"/v1/users/{user}/memories")
            assert r.status_code in (200, 404, 422) and "1234" not in r.text
            if r.status_code == 200:
                assert r.json()["total"] == 0
        exported = [json.loads(x) for x in b.get("/v1/users/alice/export").text.splitlines()]
        assert [x for x in exported if x["type"] != "header"] == []
        assert "alice" not in b.get("/v1/users").json()["users"]
        assert b.delete("/v1/users/alice").json()["memories"] == 0
        # A's memory is untouched by all of that.
        rec = a.get(base).json()
        assert rec["text"] == "Alice's secret is 1234" and rec["version"] == 1
        assert [e["event"] for e in a.get(base + "/history").json()["events"]] == ["ADD"]


ROUTES = [("GET", "/v1/whoami"), ("GET", "/v1/users"), ("POST", "/v1/users/u/memories"),
          ("GET", "/v1/users/u/memories"), ("POST", "/v1/users/u/search"), ("POST", "/v1/users/u/context"),
          ("GET", "/v1/users/u/memories/x"),
          ("PATCH", "/v1/users/u/memories/x"), ("DELETE", "/v1/users/u/memories/x"),
          ("POST", "/v1/users/u/memories/x/restore"), ("GET", "/v1/users/u/memories/x/history"),
          ("DELETE", "/v1/users/u"), ("GET", "/v1/users/u/export"), ("POST", "/v1/users/u/chat"),
          ("GET", "/v1/admin/keys"), ("POST", "/v1/admin/keys"), ("DELETE", "/v1/admin/keys/x")]


@pytest.mark.parametrize("key", [None, "wrong", "rk_000000000000_forged", "Bearer"])
def test_no_or_wrong_key_is_401_json_on_every_route(srv: Running, key: str | None) -> None:
    with srv.client(key) as c:
        for method, path in ROUTES:
            body = {"messages": "x", "query": "x", "message": "x"} if method in ("POST", "PATCH") else None
            r = c.request(method, path, json=body)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.json()["error"] == "unauthorized" and set(r.json()) == {"error", "message"}


def test_roles_and_revocation(srv: Running) -> None:
    with srv.client(srv.admin) as admin:
        assert admin.get("/v1/users").status_code == 403
        assert admin.get("/v1/users/u/memories").json()["error"] == "forbidden"
        created = admin.post("/v1/admin/keys", json={"tenant": "gamma", "label": "ci"})
        assert created.status_code == 201
        key, key_id = created.json()["api_key"], created.json()["key_id"]
        listed = admin.get("/v1/admin/keys").json()
        assert key_id in [k["key_id"] for k in listed] and all("api_key" not in k for k in listed)
        assert admin.post("/v1/admin/keys", json={"tenant": "Bad:Name"}).status_code == 422
        with srv.client(key) as g:
            assert g.get("/v1/whoami").json()["tenant"] == "gamma"
            assert g.get("/v1/admin/keys").status_code == 403
            assert admin.delete(f"/v1/admin/keys/{key_id}").json()["revoked_at"]
            assert g.get("/v1/whoami").status_code == 401
        assert admin.delete("/v1/admin/keys/nope").status_code == 404
    if srv.keys.table.database.dialect == "sqlite":
        raw = Path(srv.keys.table.database.url).read_bytes()
        assert srv.key_a.encode() not in raw  # stored hashed only
    else:
        with srv.keys.table.database.read() as tx:
            stored = repr(tx.fetchall("SELECT * FROM api_keys"))
        assert srv.key_a not in stored and srv.key_a.split("_")[1] in stored


def test_bad_bodies_are_4xx_json_and_write_nothing(srv: Running) -> None:
    with srv.client(srv.key_a) as c:
        url = "/v1/users/bad/memories"
        cases = [
            (c.post(url, content=b'{"messages": ', headers={"content-type": "application/json"}), 400),
            (c.post(url, content=b"\xff\xfe", headers={"content-type": "application/json"}), 400),
            (c.post(url, json={"messages": 42}), 422),
            (c.post(url, json={"messages": "ok", "infer": "maybe"}), 422),
            (c.post(url, json={"messages": "ok", "unknown": 1}), 422),
            (c.post(url, json={"messages": ["fine", "  "]}), 422),  # one empty message: none is written
            (c.post(url, json={"messages": ["fine", "x" * 1_000_001]}), 422),  # over REMEM_MAX_TEXT_CHARS
            (c.post(url, json={"messages": "ok", "categories": ["c" * 100]}), 422),
            (c.post(url, json=[1, 2]), 422),
            (c.post("/v1/users/bad/search", json={"query": "x", "limit": "many"}), 422),
            (c.post("/v1/users/bad/search", json={"query": "x", "limit": 0}), 422),
            (c.post("/v1/users/bad/context", json={"query": "x", "max_tokens": 0}), 422),
            (c.post("/v1/users/bad/context", json={"query": "x", "max_tokens": "lots"}), 422),
            (c.post("/v1/users/bad/context", json={"query": "x", "max_tokens": "5"}), 422),  # strict, as limit
            (c.post("/v1/users/bad/context", json={"query": "x", "max_tokens": 1.0}), 422),
            (c.post("/v1/users/bad/context", json={"query": "x", "max_tokens": True}), 422),
            (c.post("/v1/users/bad/context", json={"query": "x", "max_tokens": 200_001}), 422),
            (c.post("/v1/users/bad/context", json={"query": "  "}), 422),
            (c.post("/v1/users/bad/context", json={"query": "x", "kinds": ["thought"]}), 422),
            (c.post("/v1/users/bad/search", json={"query": "x", "since": "2025-02-01T00:00:00Z",
                                                  "until": "2025-01-01T00:00:00Z"}), 422),
            (c.get("/v1/users/bad/memories", params={"limit": -1}), 422),
            (c.get("/v1/users/bad/memories", params={"since": "yesterday"}), 422),
            (c.get("/v1/users/-bad/memories"), 422),
            (c.post(url, content=b"x" * 9_000_000, headers={"content-type": "application/json"}), 413),
        ]
        for i, (r, status) in enumerate(cases):
            assert r.status_code == status, (i, r.status_code, r.text)
            body = r.json()
            assert set(body) <= {"error", "message", "details"} and body["message"], (i, body)
            assert "x" * 100 not in r.text  # the offending input is not echoed
        assert c.get(url, params={"state": "all"}).json()["total"] == 0


def test_oversized_chunked_body_is_413(srv: Running) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"messages": "'
        for _ in range(180):  # 9 MB, over the 8 MiB default body limit
            yield b"y" * 50_000
        yield b'"}'

    with srv.client(srv.key_a) as c:
        r = c.post("/v1/users/chunky/memories", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        assert c.get("/v1/users/chunky/memories").json()["total"] == 0


def test_infer_and_chat_without_lm_are_503_json(srv: Running) -> None:
    with srv.client(srv.key_a) as c:
        r = c.post("/v1/users/lm/memories", json={"messages": "I moved to Rome", "infer": True})
        assert r.status_code == 503 and r.json()["error"] == "configuration_error"
        r = c.post("/v1/users/lm/chat", json={"message": "hello"})
        assert r.status_code == 503 and r.json()["error"] == "no_lm_configured"
        assert c.get("/v1/users/lm/memories").json()["total"] == 0


def test_unknown_route_and_method_are_json(srv: Running) -> None:
    with srv.client(srv.key_a) as c:
        assert c.get("/v1/nope").json()["error"] == "not_found"
        assert c.put("/v1/users/u/memories").json()["error"] == "method_not_allowed"


def test_concurrent_adds_and_searches_are_all_acknowledged_and_present(srv: Running) -> None:
    def work(i: int) -> list[str]:
        with srv.client(srv.key_a) as c:
            user = f"conc{i % 4}"
            ids = add(c, user, f"fact number {i} alpha", f"fact number {i} beta")
            assert c.post(f"/v1/users/{user}/search", json={"query": f"fact {i}"}).status_code == 200
            return ids

    with ThreadPoolExecutor(16) as pool:
        acked = [mid for ids in pool.map(work, range(48)) for mid in ids]
    assert len(set(acked)) == 96
    with srv.client(srv.key_a) as c:
        present = set()
        for u in range(4):
            present |= {r["id"] for r in c.get(f"/v1/users/conc{u}/memories", params={"limit": 1000}).json()["items"]}
    assert set(acked) <= present


def test_access_log_has_one_line_per_request_without_memory_text(srv: Running,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="remem.server.access")
    with srv.client(srv.key_a) as c:
        add(c, "logged", "my very private diary entry")
        c.post("/v1/users/logged/search", json={"query": "private diary"})
    with srv.client("wrong") as c:
        c.get("/v1/users")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "remem.server.access"]
    assert [(x["route"], x["status"], x["tenant"]) for x in lines[-3:]] == [
        ("/v1/users/{user_id}/memories", 200, "acme"), ("/v1/users/{user_id}/search", 200, "acme"),
        ("/v1/users", 401, None)]
    assert all(isinstance(x["ms"], float) and x["pid"] == os.getpid() for x in lines)
    assert "private" not in caplog.text


def test_rate_limit_is_429_json(tmp_path: Path) -> None:
    config = ServerConfig(rate_limit=0.5, rate_burst=2, mcp=False)
    with running_server(tmp_path / "rl", config) as s, s.client(s.key_a) as a, s.client(s.key_b) as b:
        assert [a.get("/v1/whoami").status_code for _ in range(3)] == [200, 200, 429]
        r = a.get("/v1/whoami")
        assert r.json()["error"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
        assert b.get("/v1/whoami").status_code == 200  # per key


def test_openapi_matches_the_checked_in_snapshot(srv: Running) -> None:
    """A route change shows up in review. Regenerate: UPDATE_OPENAPI=1 pytest tests/test_server.py."""
    live = httpx.get(srv.url + "/openapi.json").json()
    if os.environ.get("UPDATE_OPENAPI"):
        SNAPSHOT.write_text(json.dumps(live, indent=2, sort_keys=True) + "\n")
    assert SNAPSHOT.exists(), "no tests/openapi.json: run with UPDATE_OPENAPI=1 once"
    assert live == json.loads(SNAPSHOT.read_text()), "API changed: review, then UPDATE_OPENAPI=1"
    paths = live["paths"]
    assert {"/v1/users/{user_id}/memories", "/v1/users/{user_id}/search", "/v1/users/{user_id}/context",
            "/v1/users/{user_id}/export",
            "/v1/users/{user_id}/memories/{memory_id}/history", "/v1/admin/keys", "/v1/health",
            "/v1/ready"} <= set(paths)
    assert {"APIKeyHeader", "HTTPBearer"} <= set(live["components"]["securitySchemes"])


def test_chat_and_infer_with_a_scripted_lm(tmp_path: Path) -> None:
    from remem.pipeline import ScriptedLM, react_script

    lm = ScriptedLM({
        "ResponseGenerator": react_script(outputs={"response": "Hello Ana, noted.", "save_memory": False}),
        "MemoryExtract": [{"facts": [{"text": "Ana moved to Rome", "categories": ["home"]}]},
                          {"facts": [{"text": "Ana plays the violin", "categories": ["hobbies"]}]}],
    })
    with running_server(tmp_path / "lm", ServerConfig(rate_limit=0, mcp=False), lm=lm) as s, \
            s.client(s.key_a) as c:
        assert c.get("/v1/ready").json()["lm"] is True
        r = c.post("/v1/users/ana/chat", json={"message": "hi, I am Ana"})
        assert r.status_code == 200, r.text
        assert r.json()["reply"] == "Hello Ana, noted." and r.json()["data"]["save_memory"] is False
        r = c.post("/v1/users/ana/memories", json={"messages": ["I moved to Rome last week"], "infer": True})
        assert r.status_code == 200, r.text
        assert [(e["event"], e["text"]) for e in r.json()["events"]] == [("ADD", "Ana moved to Rome")]
        body = r.json()
        assert body["job_id"] and body["pending"] is False and body["usage"]["calls"] == 1
        facts = c.get("/v1/users/ana/memories", params={"state": "all"}).json()["items"]
        assert "Ana moved to Rome" in [f["text"] for f in facts]
        assert all(f["user_id"] == "ana" for f in facts)
        # background: the answer comes once the turn is queued and stored; the worker thread adds the fact
        r = c.post("/v1/users/ana/memories", json={"messages": ["I play the violin"], "infer": True,
                                                   "background": True})
        assert r.status_code == 200, r.text
        assert r.json()["pending"] is True and r.json()["events"] == [] and r.json()["job_id"]
        assert s.memory.pipeline.wait(30)
        texts = [f["text"] for f in c.get("/v1/users/ana/memories").json()["items"]]
        assert "Ana plays the violin" in texts and "I play the violin" in texts
        r = c.post("/v1/users/ana/memories", json={"messages": "x", "background": True})
        assert r.status_code == 422 and "background" in r.text  # background needs infer
    with running_server(tmp_path / "lm2", ServerConfig(rate_limit=0, mcp=False)) as s, s.client(s.key_b) as c:
        assert c.post("/v1/users/ana/chat", json={"message": "hi"}).status_code == 503


def test_reads_go_on_while_a_write_of_the_same_user_waits(srv: Running) -> None:
    import time

    with srv.client(srv.key_a) as c:
        add(c, "busy", "first memory")

        def write() -> httpx.Response:
            with srv.client(srv.key_a) as w:
                return w.post("/v1/users/busy/memories", json={"messages": "second memory"})

        with ThreadPoolExecutor(1) as pool:
            with srv.memory.writer.user_lock("acme:busy"):  # a write of this user is in progress
                pending = pool.submit(write)
                t0 = time.perf_counter()
                assert c.get("/v1/users/busy/memories").json()["total"] == 1
                assert c.post("/v1/users/busy/search", json={"query": "memory"}).status_code == 200
                assert time.perf_counter() - t0 < 5
                time.sleep(0.3)
                assert not pending.done()  # the write waits for the user's lock...
            assert pending.result(timeout=30).status_code == 200  # ...and lands once it is free
        assert c.get("/v1/users/busy/memories").json()["total"] == 2
