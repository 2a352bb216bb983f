"""Hostile input at the edges: REST (a real uvicorn server, one keep-alive connection), the CLI (one line on
stderr, exit 2) and MCP (a tool error). Nothing is written; the CLI never lets stored text drive the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from remem import Memory
from remem.cli import main
from remem.server.mcp import build_mcp_server, fixed_user
from remem.stores import MemoryFilter
from test_server_support import Running, running_server

SURROGATE_ADD = b'{"messages": ["half an emoji \\ud83d"]}'


def state(m: Memory) -> tuple[list[str], list[str]]:
    records = m.store.scroll(MemoryFilter(user_id=None, all_users=True, deleted=None), offset=0, limit=10_000)
    return sorted(r.model_dump_json() for r in records), [e.model_dump_json() for e in m.log.for_user(None)]


def local_port(response: httpx.Response) -> int:
    """The client-side port of the connection a response came on (same port: same keep-alive connection)."""
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


# -- REST --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_server(tmp_path_factory.mktemp("hostile-srv") / "home") as running:
        with running.client(running.key_a) as c:
            c.post("/v1/users/alice/memories", json={"messages": ["I love green tea", "I live in Lisbon"]})
        yield running


def test_rest_lone_surrogate_is_422_and_the_connection_stays_usable(srv: Running) -> None:
    before = state(srv.memory)
    with srv.client(srv.key_a) as c:
        r = c.post("/v1/users/alice/memories", content=SURROGATE_ADD, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "invalid_input"
        assert "lone surrogate" in r.json()["message"] and "messages" in r.json()["message"]
        assert r.headers.get("connection") != "close"
        port = local_port(r)
        nxt = c.get("/v1/users/alice/memories")
        assert nxt.status_code == 200 and nxt.json()["total"] == 2
        assert local_port(nxt) == port  # the same keep-alive connection answered
    assert state(srv.memory) == before


def test_rest_overflowing_timestamp_is_422_on_the_same_connection(srv: Running) -> None:
    before = state(srv.memory)
    mid = srv.memory.list(user_id="acme:alice").items[0].id
    with srv.client(srv.key_a) as c:
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/v1/users/alice/memories",
             {"json": {"messages": [{"content": "x", "timestamp": "0001-01-01T00:00:00+01:00"}]}}),
            ("GET", "/v1/users/alice/memories", {"params": {"since": "0001-01-01T00:00:00+01:00"}}),
            ("GET", "/v1/users/alice/memories", {"params": {"until": "9999-12-31T23:00:00-05:00"}}),
            ("POST", "/v1/users/alice/search", {"json": {"query": "tea", "since": "0001-01-01T00:00:00+01:00"}}),
            ("PATCH", f"/v1/users/alice/memories/{mid}", {"json": {"observed_at": "0001-01-01T00:00:00+01:00"}}),
        ]
        ports = set()
        for method, path, kwargs in requests:
            r = c.request(method, path, **kwargs)
            assert r.status_code == 422, (method, path, r.text)
            assert "0001-01-01T00:00:00+01:00" in r.json()["message"] or "9999-12-31" in r.json()["message"]
            ports.add(local_port(r))
        assert len(ports) == 1
    assert state(srv.memory) == before


HOSTILE_REQUESTS: list[tuple[str, str, bytes | None, str | None, int]] = [
    # method, path, raw JSON body, query string, expected status
    ("POST", "/v1/users/alice/memories", b'{"messages": "x", "metadata": {"a": NaN}}', None, 422),
    ("POST", "/v1/users/alice/memories", b'{"messages": "x", "metadata": {"a": 1e999}}', None, 422),
    ("POST", "/v1/users/alice/memories", b'{"messages": "x", "metadata": {"\\udc80": 1}}', None, 422),
    ("POST", "/v1/users/alice/memories", b'{"messages": "x", "metadata": ' + b'{"a":' * 500 + b"1" + b"}" * 500
     + b"}", None, 422),
    ("POST", "/v1/users/alice/memories", b"[" * 50_000 + b"]" * 50_000, None, 400),
    ("POST", "/v1/users/alice/memories", b'{"messages": "\xff\xfe"}', None, 400),
    ("POST", "/v1/users/alice/memories", b'{"messages": []}', None, 422),
    ("POST", "/v1/users/alice/memories", b'{"messages": ["  "]}', None, 422),
    ("POST", "/v1/users/alice/memories", b'{"messages": [{"content": "x", "name": "\\u001b[2J"}]}', None, 422),
    ("POST", "/v1/users/alice/memories", b'{"messages": [{"content": "x", "timestamp": 1e30}]}', None, 422),
    ("POST", "/v1/users/alice/memories", b'{"messages": "x", "categories": ["\\ud800"]}', None, 422),
    ("POST", "/v1/users/alice/memories", b'{"messages": "x", "session_id": "\\u0000"}', None, 422),
    ("POST", "/v1/users/alice/memories", b'{"messages": "x", "infer": true}', None, 503),  # no LM: not bad input
    ("POST", "/v1/users/alice/search", b'{"query": "\\ud800"}', None, 422),
    ("POST", "/v1/users/alice/search", b'{"query": "tea", "limit": 1e400}', None, 422),
    ("POST", "/v1/users/alice/search", b'{"query": "tea", "threshold": NaN}', None, 422),
    ("POST", "/v1/users/alice/search", b'{"query": "tea", "limit": ' + b"9" * 5000 + b"}", None, 400),
    ("POST", "/v1/users/alice/search",
     b'{"query": "tea", "since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}', None, 422),
    ("POST", "/v1/users/alice/chat", b'{"message": "\\ud800"}', None, 422),
    ("GET", "/v1/users/alice/memories", None, "offset=99999999999999999999", 422),
    ("GET", "/v1/users/alice/memories", None, "limit=-1", 422),
    ("GET", "/v1/users/alice/memories", None, "category=%00", 422),
    ("GET", "/v1/users/alice/memories", None, "category=", 422),
    ("GET", "/v1/users/alice%00/memories", None, None, 422),
    ("GET", "/v1/users/alice%0A/memories", None, None, 422),
    ("GET", "/v1/users/%ED%A0%80/memories", None, None, 422),
    ("GET", "/v1/users/alice/memories/%ED%A0%80", None, None, 422),
    ("GET", "/v1/users/alice/memories/" + "a" * 5000, None, None, 422),
    ("DELETE", "/v1/users/alice/memories/00000000-0000-4000-8000-000000000000", None, "reason=%00", 422),
]


@pytest.mark.parametrize(("method", "path", "body", "query", "status"), HOSTILE_REQUESTS)
def test_rest_hostile_request_is_4xx_json(srv: Running, method: str, path: str, body: bytes | None,
                                          query: str | None, status: int) -> None:
    before = state(srv.memory)
    with srv.client(srv.key_a) as c:
        url = path + (f"?{query}" if query else "")
        r = c.request(method, url, content=body, headers={"Content-Type": "application/json"} if body else {})
        assert r.status_code == status, r.text
        assert set(r.json()) >= {"error", "message"}
        r.content.decode("utf-8")  # the body is valid UTF-8
        port = local_port(r)
        again = c.get("/v1/whoami")
        assert again.status_code == 200 and local_port(again) == port
    assert state(srv.memory) == before


def test_admin_routes_refuse_hostile_labels(srv: Running) -> None:
    with srv.client(srv.admin) as c:
        for body in [b'{"tenant": "ok", "label": "\\ud800"}', b'{"tenant": "ok", "label": "\\u001b[2J"}',
                     b'{"tenant": "ok\\n"}', b'{"tenant": "ok", "label": "' + b"l" * 201 + b'"}']:
            r = c.post("/v1/admin/keys", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (body, r.text)
        assert c.delete("/v1/admin/keys/%ED%A0%80").status_code == 404  # decoded as U+FFFD: no such key
        assert all(k["tenant"] != "ok" for k in c.get("/v1/admin/keys").json())


# -- CLI ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    monkeypatch.setenv("COLUMNS", "200")
    home = tmp_path / "cli"
    monkeypatch.setenv("REMEM_HOME", str(home))
    with Memory(home) as m:
        m.add(["I love green tea"], user_id="alice")
    return home


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return (exc.value.code if isinstance(exc.value.code, int) else 1), out.out, out.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and "Traceback" not in err
    assert "\x1b" not in err
    return lines[0]


def stored(home: Path) -> tuple[list[str], list[str]]:
    with Memory(home) as m:
        return state(m)


def test_cli_the_examples_exit_2_with_one_line(cli_home: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    before = stored(cli_home)
    messages = tmp_path / "m.json"
    messages.write_text(json.dumps([{"content": "x", "timestamp": "0001-01-01T00:00:00+01:00"}]))
    for args, fragment in [
        (["add", "-u", "alice", "half an emoji \ud83d"], "lone surrogate"),
        (["add", "-u", "alice", "--file", str(messages)], "message 0 timestamp"),
        (["search", "-u", "alice", "half an emoji \ud83d"], "query"),
        (["list", "-u", "alice", "--since", "0001-01-01T00:00:00+01:00"], "--since"),
        (["search", "-u", "alice", "tea", "--until", "9999-12-31T23:00:00-05:00"], "--until"),
    ]:
        code, _, err = run(capsys, *args)
        assert code == 2, (args, err)
        assert fragment in one_error_line(err)
    assert stored(cli_home) == before


@pytest.mark.parametrize("args", [
    ["list", "-u", "alice", "--limit", "99999999999999999999999"],
    ["list", "-u", "alice", "--offset", "99999999999999999999999"],
    ["search", "-u", "alice", "tea", "--threshold", "nan"],
    ["search", "-u", "alice", "tea", "--threshold", "inf"],
    ["add", "-u", "alice", "x", "--metadata", '{"a": NaN}'],
    ["add", "-u", "alice", "x", "--metadata", "[" * 100_000],
    ["add", "-u", "alice", "x", "--metadata", "[" * 5000 + "]" * 5000],
    ["add", "-u", "alice", "x", "--category", "\x1b[31mred"],
    ["add", "-u", "alice\x1b]0;pwned\x07", "x"],
    ["forget-user", "\x1b[2J", "--yes"],
    ["show", "\x1b[2J\ud800", "-u", "alice"],
    ["update", "not-a-uuid", "x", "-u", "alice", "--reason", "\ud800"],
    ["export", "/"],
    ["keys", "create", "--tenant", "acme", "--label", "\x1b[31m"],
    ["keys", "revoke", "\udcff"],
    ["serve", "--port", "99999999"],
    ["serve", "--rate-limit", "nan"],
])
def test_cli_hostile_argument_exit_2_one_line(cli_home: Path, capsys: pytest.CaptureFixture[str],
                                              args: list[str]) -> None:
    before = stored(cli_home)
    code, out, err = run(capsys, *args)
    assert code == 2, (args, out, err)
    one_error_line(err)
    assert stored(cli_home) == before


def test_cli_invalid_utf8_argv_bytes_exit_2(cli_home: Path) -> None:
    """A real process given argv bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    env = {**os.environ, "REMEM_HOME": str(cli_home), "REMEM_EMBEDDER": "fake", "PYTHONUTF8": "1"}
    for args in ([b"add", b"-u", b"alice", b"half an emoji \xed\xa0\xbd"], [b"list", b"-u", b"al\xffice"]):
        proc = subprocess.run([sys.executable.encode(), b"-m", b"remem.cli", *args], env=env, capture_output=True,
                              timeout=120, check=False)
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.decode("utf-8")  # valid UTF-8: the surrogates were escaped, not written
        assert len([x for x in err.splitlines() if x.strip()]) == 1 and err.startswith("error:"), err
    assert stored(cli_home)[0] and len(stored(cli_home)[0]) == 1


def test_cli_output_cannot_drive_the_terminal(cli_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stored text with ANSI escapes, C1 controls, bidi overrides and rich markup is shown, never obeyed."""
    hostile = "tea\x1b[2J\x1b]0;pwned\x07 \x9b31m \u202eevil [bold red]loud[/] \r over"
    with Memory(cli_home) as m:
        m.add([{"content": hostile, "name": "[blink]Bob[/blink]"}], user_id="alice", categories=["[red]x[/red]"],
              session_id="s1")
        mid = m.list(user_id="alice", kinds=["episode"]).items[0].id
        m.update(mid, hostile + " again", user_id="alice", reason="\x1b[1mbold reason")
    outputs = []
    for args in (["list", "-u", "alice"], ["search", "-u", "alice", "tea"], ["show", mid, "-u", "alice"],
                 ["history", mid, "-u", "alice"]):
        code, out, err = run(capsys, *args)
        assert code == 0, err
        outputs.append(out)
        for bad in ("\x1b", "\x07", "\x9b", "\u202e", "\r"):
            assert bad not in out, (args, repr(bad))
    joined = "".join(outputs)
    assert "\\x1b[2J" in joined and "\\u202e" in joined and "\\x9b" in joined  # shown as visible escapes
    assert "[bold red]loud[/]" in joined.replace("\n", "")  # markup printed literally, not interpreted
    assert "[blink]Bob[/blink]" in outputs[1].replace("\n", "") and "[red]x[/red]" in outputs[0].replace("\n", "")


# -- MCP ---------------------------------------------------------------------------------------------------------
async def test_mcp_tools_turn_hostile_input_into_tool_errors(tmp_path: Path) -> None:
    with Memory(tmp_path / "mcp", embedder="fake") as m:
        mid = m.add("Alice likes tea", user_id="alice").events[0].memory_id
        before = state(m)
        server = build_mcp_server(m, fixed_user("alice"), static_profile=True)
        async with Client(server) as client:
            for tool, args, fragment in [
                ("add_memory", {"text": "half an emoji \ud83d"}, "text contains a lone surrogate"),
                ("add_memory", {"text": "x", "categories": ["\x1b[2J"]}, "categories[0]"),
                ("add_memory", {"text": "x" * 1_000_001}, "1000001 characters"),
                ("search_memories", {"query": "half an emoji \ud83d"}, "query"),
                ("search_memories", {"query": "tea", "limit": 10**12}, "limit"),
                ("list_memories", {"offset": 10**12}, "offset"),
                ("list_memories", {"category": "\x00"}, "categories[0]"),
                ("update_memory", {"memory_id": mid, "text": "half an emoji \ud83d"}, "text"),
                ("update_memory", {"memory_id": "\ud800", "text": "x"}, "memory id"),
                ("delete_memory", {"memory_id": "x" * 100_000}, "memory id"),
            ]:
                result = await client.call_tool(tool, args)
                assert result.is_error, (tool, args)
                text = str(result.content[0].text)
                assert "invalid_input: " in text and fragment in text, (tool, text)
                text.encode("utf-8")
        assert state(m) == before


def test_chat_reports_a_line_that_is_not_utf8_and_goes_on(tmp_path: Path) -> None:
    script = tmp_path / "lm.json"
    script.write_text(json.dumps({"routes": {}, "default": {
        "next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}, "reasoning": "ok",
        "response": "Hello there.", "save_memory": False}}))
    env = {**os.environ, "REMEM_HOME": str(tmp_path / "chat"), "REMEM_EMBEDDER": "fake", "PYTHONUTF8": "0",
           "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run([sys.executable, "-m", "remem.cli", "chat", "-u", "ana", "--lm", f"scripted:{script}"],
                          input=b"half an emoji \xed\xa0\xbd\nhi\n/quit\n", env=env, capture_output=True,
                          timeout=120, check=False)
    err, out = proc.stderr.decode("utf-8"), proc.stdout.decode("utf-8")
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.count("error:") == 1 and "lone surrogate" in err
    assert "Hello there." in out  # the next line was answered
    with Memory(tmp_path / "chat", embedder="fake") as m:
        assert [r.text for r in m.list(user_id="ana").items] == ["hi"]


def test_updates_cannot_grow_metadata_past_the_limit_by_merging(fake_memory) -> None:
    """Each update merges its metadata into the memory's: the merged object obeys the 16 KiB limit (an export
    must re-import), and the refused update writes nothing."""
    from remem import ValidationError

    memory_id = fake_memory.add("x", user_id="u").events[0].memory_id
    for i in range(16):
        fake_memory.update(memory_id, metadata={f"k{i}": "x" * 1000}, user_id="u")
    with pytest.raises(ValidationError, match="more than the limit of 16384"):
        fake_memory.update(memory_id, metadata={"k16": "x" * 1000}, user_id="u")
    record = fake_memory.get(memory_id, user_id="u")
    assert len(record.metadata) == 16 and record.version == 17


def test_an_integer_of_more_than_4300_digits_in_an_input_file_is_exit_2(tmp_path, capsys, monkeypatch) -> None:
    """Python refuses to convert such an integer (ValueError, not a JSON syntax error): the CLI names the file
    and exits 2 (add --file, import), never "unexpected error"."""
    from remem.cli import main

    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    home = str(tmp_path / "h")
    big = "9" * 5000
    add_file = tmp_path / "big.json"
    add_file.write_text('[{"content": "x", "metadata": {"n": ' + big + "}}]")
    import_file = tmp_path / "big.jsonl"
    import_file.write_text('{"type": "header", "format": "remem", "version": 1, "n": ' + big + "}\n")
    for args in (["add", "-u", "a", "--file", str(add_file)], ["import", str(import_file)]):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--home", home])
        err = capsys.readouterr().err
        assert exc.value.code == 2, (args, err)
        assert "unexpected" not in err and "JSON" in err
