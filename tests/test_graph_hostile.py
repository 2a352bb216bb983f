"""Hostile and sloppy input to graph memory (review 2, findings 3, 7, 11, 14, 15, 16): every entry point answers
with a typed error naming the field — the library a ``ValidationError``, REST a 422 (never 500/502), the CLI one
line with exit 2 — and nothing is written. Also: the async facade, the CLI's reports, ``remem serve``'s bind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from remem import AsyncMemory, ConfigurationError, Memory, ValidationError
from remem.cli import main
from remem.graph import EntityRef, Triplet
from remem.server import ServerConfig, create_app
from remem.server.auth import KeyStore

G = "/v1/users/alice/graph"
LOW = "0001-01-01T00:00:00+05:00"  # a valid ISO time whose UTC form is before year 1
HIGH = "9999-12-31T23:00:00-05:00"  # … after year 9999


@pytest.fixture
def gm(tmp_path: Path) -> Iterator[Memory]:
    with Memory(tmp_path / "g", embedder="fake", graph=True) as m:
        yield m


@pytest.fixture
def client(gm: Memory, tmp_path: Path) -> Iterator[TestClient]:
    keys = KeyStore.for_home(tmp_path / "keys")
    app = create_app(gm, keys, ServerConfig(rate_limit=0, mcp=False))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["X-API-Key"] = keys.create(tenant="acme").api_key
        yield c
    keys.close()


def post(c: TestClient, path: str, body: object) -> Any:
    """Send ``body`` as raw JSON (json.dumps keeps lone surrogates as \\ud800 escapes, as a hostile client does)."""
    return c.post(G + path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def test_the_library_names_the_field_of_every_bad_argument(gm: Memory) -> None:
    g = gm.graph
    low = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    cases: list[tuple[str, Any]] = [
        ("valid_from", lambda: g.add("Alice", "likes", "tea", user_id="alice", valid_from=low)),
        ("valid_to", lambda: g.add("Alice", "likes", "tea", user_id="alice", valid_to="2024-01-01")),
        ("observed_at", lambda: g.add("Alice", "likes", "tea", user_id="alice", observed_at=low)),
        ("subject.name", lambda: g.add("Ma\ud800ya", "likes", "tea", user_id="alice")),
        ("subject.name", lambda: g.add("Ma\x07ya", "likes", "tea", user_id="alice")),
        ("subject.name", lambda: g.add("M" * 201, "likes", "tea", user_id="alice")),
        ("subject.hint", lambda: g.add({"name": "Maya", "hint": "\udcff"}, "likes", "tea", user_id="alice")),
        ("object.hint", lambda: g.add("Maya", "likes", {"name": "tea", "hint": "h" * 201}, user_id="alice")),
        ("subject.type", lambda: g.add({"name": "Maya", "type": "robot"}, "likes", "tea", user_id="alice")),
        ("relation", lambda: g.add("Maya", "l" + "_x" * 40, "tea", user_id="alice")),
        ("source_ids[0]", lambda: g.add("Maya", "likes", "tea", user_id="alice", source_ids=["\udcff"])),
        ("source_ids[0]", lambda: g.add("Maya", "likes", "tea", user_id="alice", source_ids=["x" * 201])),
        ("source_ids", lambda: g.add("Maya", "likes", "tea", user_id="alice", source_ids=["s"] * 1001)),
        ("source_ids", lambda: g.add("Maya", "likes", "tea", user_id="alice", source_ids="t1")),
        ("fact", lambda: g.add("Maya", "likes", "tea", user_id="alice", fact="f" * 2001)),
        ("reason", lambda: g.add("Maya", "likes", "tea", user_id="alice", reason="\x00")),
        ("actor", lambda: g.add("Maya", "likes", "tea", user_id="alice", actor="")),
        ("triplet 0 source_ids[0]", lambda: g.add_many([Triplet.model_construct(
            subject=EntityRef(name="A"), relation="likes", object=EntityRef(name="B"), source_ids=["\x01"],
            metadata={})], user_id="alice")),
        ("triplets", lambda: g.add_many("Alice likes tea", user_id="alice")),  # type: ignore[arg-type]
        ("since", lambda: g.neighbours("Alice", user_id="alice", since=datetime(2024, 1, 1),
                                       until=datetime(2023, 1, 1))),
        ("as_of", lambda: g.neighbours("Alice", user_id="alice", as_of=low)),
        ("until", lambda: g.neighbours("Alice", user_id="alice", until="2024-01-01")),
        ("hops", lambda: g.neighbours("Alice", user_id="alice", hops=True)),
        ("hops", lambda: g.neighbours("Alice", user_id="alice", hops="2")),
        ("hops", lambda: g.neighbours("Alice", user_id="alice", hops=2.0)),
        ("entity_or_text", lambda: g.neighbours("Ma\udcffya", user_id="alice")),
        ("tz", lambda: g.neighbours("Alice", user_id="alice", tz="Europe/Berlin")),  # type: ignore[arg-type]
        ("valid_to", lambda: g.close("6f1c8d0e-0000-4000-8000-000000000000", user_id="alice", valid_to=low)),
        ("other_id", lambda: g.merge("6f1c8d0e-0000-4000-8000-000000000000", "\ud800", user_id="alice")),
        ("relation_id", lambda: g.relation("x" * 65, user_id="alice")),
    ]
    for field, call in cases:
        with pytest.raises(ValidationError) as exc:
            call()
        assert exc.value.context.get("field") == field, (field, exc.value.message)
        assert exc.value.message.startswith(field), exc.value.message
    assert g.events(user_id="alice") == [] and g.view(user_id="alice").entities == []  # nothing was written


def test_rest_graph_routes_answer_422_to_hostile_input_never_5xx(client: TestClient) -> None:
    made = post(client, "/relations", {"subject": "Alice", "relation": "lives_in", "object": "Berlin"})
    assert made.status_code == 200
    rid, eid = made.json()["relation"]["id"], made.json()["relation"]["subject_id"]
    refused: list[tuple[str, Any, str]] = [
        ("/relations", {"subject": "Alice", "relation": "lives_in", "object": "X", "valid_from": LOW}, "valid_from"),
        ("/relations", {"subject": "Alice", "relation": "lives_in", "object": "X", "valid_to": HIGH}, "valid_to"),
        ("/relations", {"subject": "Alice", "relation": "likes", "object": "X", "valid_from": 1700000000},
         "valid_from"),
        ("/relations", {"subject": "Ma\ud800ya", "relation": "likes", "object": "tea"}, "subject"),
        ("/relations", {"subject": {"name": "Maya", "hint": "\ud800"}, "relation": "likes", "object": "tea"},
         "subject"),
        ("/relations", {"subject": {"name": "Maya", "hint": "h" * 201}, "relation": "likes", "object": "tea"},
         "subject"),
        ("/relations", {"subject": "Maya", "relation": "likes", "object": "tea", "source_ids": ["\udcff"]},
         "source_ids"),
        ("/relations", {"subject": "Maya", "relation": "likes", "object": "tea", "source_ids": ["x" * 201]},
         "source_ids"),
        ("/relations", {"subject": "Maya", "relation": "likes", "object": "tea", "source_ids": ["s"] * 1001},
         "source_ids"),
        ("/relations", {"subject": "Maya", "relation": "l" + "_x" * 40, "object": "tea"}, "relation"),
        ("/relations", {"subject": "Maya", "relation": "Is The Best Friend Of, Sadly", "object": "tea"}, "relation"),
        ("/search", {"query": "Alice", "as_of": LOW}, "as_of"),
        ("/search", {"query": "Alice", "since": HIGH}, "since"),
        ("/search", {"query": "Alice", "until": HIGH}, "until"),
        ("/search", {"query": "Alice", "since": "2024-01-01T00:00:00Z", "until": "2023-01-01T00:00:00Z"}, "since"),
        ("/search", {"query": "Alice", "as_of": "20240101"}, "as_of"),
        ("/search", {"query": "Alice", "as_of": "-1"}, "as_of"),
        ("/search", {"query": "Alice", "as_of": 1700000000}, "as_of"),
        ("/search", {"query": "Alice", "hops": "2"}, "hops"),
        ("/search", {"query": "Alice", "hops": True}, "hops"),
        ("/search", {"query": "Alice", "limit": 2.0}, "limit"),
        ("/search", {"query": "\ud800"}, "query"),
        ("/search", {"query": "Alice", "timezone": "\ud800"}, "timezone"),
        (f"/relations/{rid}/close", {"valid_to": LOW}, "valid_to"),
        (f"/entities/{eid}/merge", {"other_id": "\ud800"}, "other_id"),
        (f"/entities/{eid}/merge", {"other_id": "x" * 65}, "other_id"),
    ]
    for path, body, field in refused:
        r = post(client, path, body)
        assert r.status_code == 422, (path, body, r.status_code, r.text)
        assert field in r.json()["message"], (field, r.json())
    assert client.get(G, params={"deleted": "yes"}).status_code == 422
    assert client.get(G + "/relations/" + "x" * 65).status_code == 422
    view = client.get(G).json()
    assert len(view["relations"]) == 1 and len(view["entities"]) == 2  # nothing refused was written


def test_rest_not_found_messages_name_the_user_as_the_caller_knows_it(client: TestClient) -> None:
    missing = "6f1c8d0e-0000-4000-8000-000000000000"
    for method, path in (("GET", f"/relations/{missing}"), ("POST", f"/relations/{missing}/close"),
                         ("DELETE", f"/relations/{missing}"), ("GET", f"/entities/{missing}"),
                         ("GET", f"/entities/{missing}/history")):
        r = client.request(method, G + path)
        assert r.status_code == 404 and "acme" not in r.text, (path, r.text)
    assert client.get(G + f"/relations/{missing}").json()["message"] == f"no relation {missing} for user alice"


async def test_async_memory_has_the_graph(gm: Memory) -> None:
    memory = AsyncMemory(sync=gm)
    change = await memory.graph.add("Alice", "lives_in", {"name": "Lisbon", "type": "place"}, user_id="alice")
    found = await memory.graph.neighbours("Alice", user_id="alice")
    assert [f.text for f in found.facts] == ["Alice lives in Lisbon"]
    assert (await memory.graph.relation(change.relation.id, user_id="alice")).id == change.relation.id
    closed = await memory.graph.close(change.relation.id, user_id="alice", valid_to=datetime(2030, 1, 1, tzinfo=UTC))
    assert closed.valid_to == datetime(2030, 1, 1, tzinfo=UTC)
    assert [e.event.value for e in await memory.graph.history(change.relation.id, user_id="alice")] == [
        "ADD", "CLOSE"]
    with pytest.raises(ValidationError, match="hops"):
        await memory.graph.neighbours("Alice", user_id="alice", hops=9)
    with Memory(gm.home.parent / "off", embedder="fake") as off, pytest.raises(ConfigurationError):
        _ = AsyncMemory(sync=off).graph


def test_cli_graph_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    monkeypatch.setenv("COLUMNS", "200")
    home = tmp_path / "cli"
    with Memory(home, graph=True) as memory:
        memory.add("I like tea", user_id="alice")
        memory.graph.add({"name": "Alice", "type": "person"}, "lives_in", {"name": "Berlin", "type": "place"},
                         user_id="alice", valid_from=datetime(2020, 1, 1, tzinfo=UTC))
        memory.graph.add("Alice", "lives_in", {"name": "Lisbon", "type": "place"}, user_id="alice",
                         valid_from=datetime(2024, 3, 1, tzinfo=UTC))

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main([*args, "--home", str(home)])
        out = capsys.readouterr()
        return int(exc.value.code or 0), " ".join(out.out.split()), out.err

    code, out, _ = run("graph", "--help")
    assert code == 0 and "--since" not in out and "--as-of" in out
    code, out, _ = run("graph", "-u", "alice", "Alice", "--as-of", "2023-01-01")
    assert code == 0 and "held then" in out and "ended" not in out  # before: "ended", though it held then
    code, out, _ = run("graph", "-u", "alice", "Alice")
    assert "holds" in out and "ended" in out
    code, _, err = run("graph", "-u", "alice", "Ma\udcffya")  # what Python makes of the bytes Ma\xffya in argv
    assert code == 2 and err.startswith("error: entity_or_text contains a lone surrogate")  # before: exit 1
    export = tmp_path / "out.jsonl"
    code, out, _ = run("export", str(export))
    assert code == 0 and out == (f"exported 1 memories and 3 graph entities, 2 relations, 6 graph events to "
                                 f"{export}")
    code, out, _ = run("import", str(export))
    assert code == 0 and out == ("imported 0 memories and 0 history events (1 already present, skipped), 0 graph "
                                 "entities, 0 relations and 0 graph events (5 already present, skipped)")


def test_serve_reports_a_port_in_use_before_saying_it_serves(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "REMEM_HOME": str(tmp_path / "home"), "REMEM_EMBEDDER": "fake"}
        run = subprocess.run([sys.executable, "-m", "remem.cli", "serve", "--port", str(port)], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1 and "serving" not in run.stdout  # before: "remem serving …", then a traceback
    assert run.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_import_refuses_hostile_graph_lines_naming_the_line(gm: Memory, tmp_path: Path) -> None:
    gm.graph.add("Alice", "likes", "tea", user_id="alice", source_ids=["t1"])
    good = tmp_path / "good.jsonl"
    gm.export(good)
    lines = good.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if '"type": "relation"' in line)
    for old, new in (('"t1"', '"\\udcff"'), ('"t1"', '"' + "x" * 201 + '"'), ('"fact": null', '"fact": "\\u0000"'),
                     ('"valid_from": null', f'"valid_from": "{LOW}"')):
        bad = tmp_path / "bad.jsonl"
        bad.write_text("\n".join(line.replace(old, new) if i == number else line
                                 for i, line in enumerate(lines, start=1)))
        with Memory(tmp_path / "copy", embedder="fake", graph=True) as copy:
            with pytest.raises(ValidationError, match=f"bad.jsonl:{number}"):
                copy.import_(bad)
            assert copy.graph.view(user_id="alice").entities == []  # nothing was written
