"""Relative dates are counted on the caller's calendar (issue 8, part 4), end to end on the real store.

Each case stores turns said at local times whose UTC date differs from their local date, then asks with a
reference time in that zone: the expected memories are the ones of the *local* day/week/month. Written against
the public API only (Memory, Message, Extractor, Agent, ScriptedLM) and the REST/CLI/MCP edges.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from remem import Memory, Message
from remem.pipeline import Agent, Extractor, Pipeline, ScriptedLM, meter, react_script
from test_cli import assert_one_line_error, run, run_json
from test_server_support import running_server

TOKYO = timezone(timedelta(hours=9))
PDT = timezone(timedelta(hours=-7))
BERLIN = ZoneInfo("Europe/Berlin")


def said(memory: Memory, user: str, *turns: tuple[str, datetime]) -> dict[str, str]:
    """Store turns as episodes; text → memory id."""
    msgs = [Message(content=text, timestamp=when, id=f"t{i}") for i, (text, when) in enumerate(turns)]
    events = memory.add(msgs, user_id=user).events
    return {text: e.memory_id or "" for (text, _), e in zip(turns, events, strict=True)}


def found(memory: Memory, user: str, query: str, now: datetime) -> list[str]:
    hits = memory.search(query, user_id=user, time_expressions="filter", reference_time=now, expand_neighbors=0)
    return sorted(h.record.text for h in hits)


def test_issue_example_yesterday_in_tokyo(fake_memory: Memory) -> None:
    """Asked at 25 July 2024 08:00 +09:00, "yesterday" is 24 July in Tokyo (the UTC date is still 24 July,
    whose yesterday would be 23 July)."""
    said(fake_memory, "aiko",
         ("I visited the Meiji shrine", datetime(2024, 7, 23, 20, 0, tzinfo=TOKYO)),  # 11:00Z on 23 July
         ("I went to a ramen bar in Shinjuku", datetime(2024, 7, 24, 19, 0, tzinfo=TOKYO)))  # 10:00Z on 24 July
    now = datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO)
    assert found(fake_memory, "aiko", "what did I do yesterday", now) == ["I went to a ramen bar in Shinjuku"]


def test_last_week_on_monday_morning_in_tokyo(fake_memory: Memory) -> None:
    # Monday 29 July 08:00 in Tokyo is still Sunday 28 July in UTC: last week is 22-28 July local.
    said(fake_memory, "aiko",
         ("Monday of last week: the pottery class", datetime(2024, 7, 22, 9, 0, tzinfo=TOKYO)),  # 00:00Z 22 July
         ("the Sunday before: a hike", datetime(2024, 7, 21, 10, 0, tzinfo=TOKYO)))  # 01:00Z 21 July
    now = datetime(2024, 7, 29, 8, 0, tzinfo=TOKYO)
    assert found(fake_memory, "aiko", "what did I do last week", now) == ["Monday of last week: the pottery class"]


def test_last_monday_and_days_ago_with_a_negative_offset(fake_memory: Memory) -> None:
    said(fake_memory, "sam",
         ("Monday evening: the climbing gym", datetime(2024, 7, 22, 21, 0, tzinfo=PDT)),  # 04:00Z on 23 July
         ("Sunday evening: a barbecue", datetime(2024, 7, 21, 20, 0, tzinfo=PDT)),  # 03:00Z on 22 July
         ("Tuesday morning: the dentist", datetime(2024, 7, 23, 10, 0, tzinfo=PDT)))  # 17:00Z on 23 July
    tuesday_night = datetime(2024, 7, 23, 20, 0, tzinfo=PDT)  # Wednesday 03:00Z
    assert found(fake_memory, "sam", "what did I do last Monday", tuesday_night) == [
        "Monday evening: the climbing gym"]
    thursday = datetime(2024, 7, 25, 18, 0, tzinfo=PDT)  # Friday 01:00Z: 3 days ago is Monday 22 July local
    assert found(fake_memory, "sam", "what did I do 3 days ago", thursday) == ["Monday evening: the climbing gym"]
    assert found(fake_memory, "sam", "what happened two days ago", thursday) == ["Tuesday morning: the dentist"]


def test_in_may_is_the_local_month(fake_memory: Memory) -> None:
    said(fake_memory, "aiko",
         ("early May: the Golden Week trip", datetime(2024, 5, 1, 5, 0, tzinfo=TOKYO)),  # 30 April 20:00Z
         ("early June: the rainy season began", datetime(2024, 6, 1, 3, 0, tzinfo=TOKYO)))  # 31 May 18:00Z
    now = datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO)
    assert found(fake_memory, "aiko", "what did I do in May", now) == ["early May: the Golden Week trip"]


def test_tomorrow_and_tonight_just_after_local_midnight(fake_memory: Memory) -> None:
    said(fake_memory, "lena",
         ("Friday: the concert", datetime(2024, 7, 26, 20, 0, tzinfo=BERLIN)),
         ("Thursday evening: dinner with Jonas", datetime(2024, 7, 25, 20, 0, tzinfo=BERLIN)),  # 18:00Z
         ("Wednesday evening: the cinema", datetime(2024, 7, 24, 21, 0, tzinfo=BERLIN)))  # 19:00Z on 24 July
    now = datetime(2024, 7, 25, 0, 30, tzinfo=BERLIN)  # 24 July 22:30Z
    assert found(fake_memory, "lena", "what is planned for tomorrow", now) == ["Friday: the concert"]
    assert found(fake_memory, "lena", "what am I doing tonight", now) == ["Thursday evening: dinner with Jonas"]


def test_yesterday_across_the_spring_dst_change_in_berlin(fake_memory: Memory) -> None:
    # 31 March 2024: clocks go from 02:00 CET to 03:00 CEST. Yesterday (30 March, CET) is
    # 2024-03-29T23:00Z .. 2024-03-30T22:59:59.999999Z; a fixed +02:00 (today's offset) would be an hour off.
    said(fake_memory, "lena",
         ("just after midnight on Saturday", datetime(2024, 3, 30, 0, 30, tzinfo=BERLIN)),  # 29 March 23:30Z
         ("late on Saturday", datetime(2024, 3, 30, 23, 30, tzinfo=BERLIN)),  # 30 March 22:30Z
         ("just after midnight on Sunday", datetime(2024, 3, 31, 0, 30, tzinfo=BERLIN)))  # 30 March 23:30Z
    now = datetime(2024, 3, 31, 12, 0, tzinfo=BERLIN)
    assert found(fake_memory, "lena", "what did I do yesterday", now) == [
        "just after midnight on Saturday", "late on Saturday"]
    fixed = now.astimezone(timezone(timedelta(hours=2)))  # a fixed offset stays fixed: an hour off on 30 March
    assert found(fake_memory, "lena", "what did I do yesterday", fixed) == ["just after midnight on Saturday"]


def test_utc_callers_are_unchanged(fake_memory: Memory) -> None:
    said(fake_memory, "u",
         ("the 23rd", datetime(2024, 7, 23, 23, 0, tzinfo=UTC)), ("the 24th", datetime(2024, 7, 24, 1, 0)))
    assert found(fake_memory, "u", "yesterday", datetime(2024, 7, 25, 8, 0)) == ["the 24th"]  # naive = UTC
    assert found(fake_memory, "u", "yesterday", datetime(2024, 7, 24, 8, 0, tzinfo=UTC)) == ["the 23rd"]


# -- the pipeline ------------------------------------------------------------------------------------------------
def test_fallback_fact_date_is_the_senders_yesterday() -> None:
    """2023-05-08T00:30+02:00 is 7 May 22:30 UTC: "yesterday" is 7 May on the sender's calendar (UTC: 6 May)."""
    cest = timezone(timedelta(hours=2))
    lm = ScriptedLM([{"facts": [{"text": "Caroline went to a support group", "source_ids": ["m1"]},
                                {"text": "Caroline met Mel", "source_ids": ["m1"], "date": "2023-05-07"}]}])
    msg = Message(content="I went to a support group yesterday", id="m1", timestamp=datetime(2023, 5, 8, 0, 30,
                                                                                              tzinfo=cest))
    with meter(lm):
        facts = Extractor()([msg])
    assert [f.observed_at for f in facts] == [datetime(2023, 5, 7, tzinfo=cest)] * 2
    assert [f.observed_at.isoformat() for f in facts if f.observed_at] == ["2023-05-07T00:00:00+02:00"] * 2


def test_extraction_prompt_shows_the_messages_own_offset() -> None:
    lm = ScriptedLM([{"facts": []}])
    new = Message(content="I went to a ramen bar yesterday", name="Aiko", id="t1",
                  timestamp=datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO))
    earlier = Message(content="hello", name="Aiko", id="t0", timestamp=datetime(2024, 7, 24, 14, 0, tzinfo=UTC))
    with meter(lm):
        Extractor()([new], [earlier])
    prompt = lm.requests[0]["user"]
    assert "[t1] 2024-07-25T08:00+09:00 (Thursday) Aiko (user): I went to a ramen bar yesterday" in prompt
    assert "[t0] 2024-07-24T23:00+09:00 (Wednesday) Aiko (user): hello" in prompt  # context, in the same zone
    assert "2024-07-24 23:00" not in prompt


def test_pipeline_stores_the_local_day_and_search_finds_it_in_that_zone(fake_memory: Memory) -> None:
    cest = timezone(timedelta(hours=2))
    text = "Caroline went to a support group"
    lm = ScriptedLM({"MemoryExtract": [{"facts": [{"text": text, "categories": ["events"], "source_ids": ["m1"]}]}]})
    Pipeline(fake_memory, lm)
    msg = Message(content="I went to a support group yesterday", id="m1", name="Caroline",
                  timestamp=datetime(2023, 5, 8, 0, 30, tzinfo=cest))
    result = fake_memory.add([msg], user_id="caroline", infer=True)
    record = fake_memory.get(result.events[0].memory_id or "", user_id="caroline")
    assert record.observed_at == datetime(2023, 5, 6, 22, 0, tzinfo=UTC)  # 7 May 00:00 +02:00, stored as UTC
    [episode] = fake_memory.list(user_id="caroline", kinds=["episode"]).items
    assert episode.observed_at == datetime(2023, 5, 7, 22, 30, tzinfo=UTC)
    hits = fake_memory.search("what happened the day before yesterday", user_id="caroline", kinds=["fact"],
                              time_expressions="filter", reference_time=datetime(2023, 5, 9, 9, 0, tzinfo=cest))
    assert [h.record.id for h in hits] == [record.id]


# -- the chat agent ----------------------------------------------------------------------------------------------
def test_agent_sees_local_time_and_searches_local_days(fake_memory: Memory) -> None:
    said(fake_memory, "aiko",
         ("I visited the Meiji shrine", datetime(2024, 7, 23, 20, 0, tzinfo=TOKYO)),
         ("I went to a ramen bar in Shinjuku", datetime(2024, 7, 24, 19, 0, tzinfo=TOKYO)))
    lm = ScriptedLM({"ResponseGenerator": react_script(
        ("search_by_time", {"start": "2024-07-24", "end": "2024-07-24", "search_text": ""}),
        outputs={"response": "Ramen in Shinjuku.", "save_memory": False})})
    reply = Agent(fake_memory, lm=lm).reply("aiko", "What did I do yesterday?",
                                           now=datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO))
    assert [c.texts for c in reply.tool_calls] == [["I went to a ramen bar in Shinjuku"]]
    prompt = lm.requests[-1]["user"]
    assert "2024-07-25T08:00+09:00 (Thursday)" in prompt
    assert "- (2024-07-24) user said: I went to a ramen bar in Shinjuku" in prompt  # the local date


def test_agent_time_expressions_in_search_texts_use_its_now(fake_memory: Memory) -> None:
    said(fake_memory, "aiko",
         ("I visited the Meiji shrine", datetime(2024, 7, 23, 20, 0, tzinfo=TOKYO)),
         ("I went to a ramen bar in Shinjuku", datetime(2024, 7, 24, 19, 0, tzinfo=TOKYO)))
    lm = ScriptedLM({"ResponseGenerator": react_script(
        ("fetch_similar_memories", {"search_text": "what did I do yesterday"}),
        outputs={"response": "Ramen.", "save_memory": False})})
    reply = Agent(fake_memory, lm=lm).reply("aiko", "What did I do yesterday?",
                                           now=datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO))
    [call] = reply.tool_calls
    assert call.texts[0] == "I went to a ramen bar in Shinjuku"  # the time boost counts from the reply's now


# -- the edges: REST, CLI, MCP -----------------------------------------------------------------------------------
def test_rest_search_takes_a_timezone_and_a_reference_time(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv") as srv, srv.client(srv.key_a) as c:
        r = c.post("/v1/users/aiko/memories", json={"messages": [
            {"content": "I visited the Meiji shrine", "timestamp": "2024-07-23T20:00:00+09:00"},
            {"content": "I went to a ramen bar in Shinjuku", "timestamp": "2024-07-24T19:00:00+09:00"}]})
        assert r.status_code == 200, r.text
        body = {"query": "what did I do yesterday", "time_expressions": "filter"}
        for extra in ({"timezone": "Asia/Tokyo", "reference_time": "2024-07-25T08:00:00"},  # naive: Tokyo time
                      {"reference_time": "2024-07-25T08:00:00+09:00"},  # the offset sets the calendar
                      {"timezone": "Asia/Tokyo", "reference_time": "2024-07-24T23:00:00Z"}):
            r = c.post("/v1/users/aiko/search", json={**body, **extra})
            assert r.status_code == 200, r.text
            assert [h["record"]["text"] for h in r.json()["hits"]] == ["I went to a ramen bar in Shinjuku"], extra
        r = c.post("/v1/users/aiko/search", json={**body, "reference_time": "2024-07-25T08:00:00"})  # naive: UTC
        assert [h["record"]["text"] for h in r.json()["hits"]] == ["I went to a ramen bar in Shinjuku"]
        r = c.post("/v1/users/aiko/search", json={**body, "reference_time": "2024-07-24T08:00:00Z"})
        assert [h["record"]["text"] for h in r.json()["hits"]] == ["I visited the Meiji shrine"]
        r = c.post("/v1/users/aiko/search", json={"query": "shrine", "since": "2024-07-24T00:00:00",
                                                  "until": "2024-07-24T23:59:59", "timezone": "Asia/Tokyo"})
        assert [h["record"]["text"] for h in r.json()["hits"]] == ["I went to a ramen bar in Shinjuku"]
        r = c.post("/v1/users/aiko/search", json={**body, "timezone": "Mars/Olympus"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_input" and "timezone" in r.json()["message"]


def test_cli_search_and_list_take_tz_and_at(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    chat = tmp_path / "chat.jsonl"
    chat.write_text("\n".join(json.dumps(m) for m in [
        {"content": "late on the 24th in Tokyo", "timestamp": "2024-07-24T01:00:00+09:00", "id": "a"},  # 23rd UTC
        {"content": "evening of the 24th in Tokyo", "timestamp": "2024-07-24T19:00:00+09:00", "id": "b"},
        {"content": "the 23rd in Tokyo", "timestamp": "2024-07-23T20:00:00+09:00", "id": "c"}]) + "\n")
    assert run(capsys, "add", "-u", "aiko", "--file", str(chat))[0] == 0
    texts = [h["record"]["text"] for h in run_json(capsys, "search", "-u", "aiko", "what did I do yesterday",
                                                       "--tz", "Asia/Tokyo", "--at", "2024-07-25T08:00",
                                                       "--time-expressions", "filter")]
    assert sorted(texts) == ["evening of the 24th in Tokyo", "late on the 24th in Tokyo"]
    page = run_json(capsys, "list", "-u", "aiko", "--tz", "Asia/Tokyo", "--since", "2024-07-24",
                    "--until", "2024-07-24")
    assert sorted(r["text"] for r in page["items"]) == ["evening of the 24th in Tokyo", "late on the 24th in Tokyo"]
    assert_one_line_error(*run(capsys, "search", "-u", "aiko", "x", "--tz", "Mars/Olympus"), 2, "--tz: unknown time zone")


async def test_mcp_search_takes_the_users_timezone(fake_memory: Memory) -> None:
    from mcp import Client

    from remem.server.mcp import build_mcp_server, fixed_user

    fake_memory.add("Alice went hiking", user_id="alice")
    async with Client(build_mcp_server(fake_memory, fixed_user("alice"))) as client:
        ok = await client.call_tool("search_memories", {"query": "hiking yesterday", "timezone": "Asia/Tokyo"})
        assert not ok.is_error and "Alice went hiking" in ok.content[0].text
        bad = await client.call_tool("search_memories", {"query": "hiking", "timezone": "Mars/Olympus"})
        assert bad.is_error and "timezone" in bad.content[0].text
