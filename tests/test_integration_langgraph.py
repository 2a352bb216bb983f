"""RememStore against LangGraph's store contract, and inside a real LangGraph graph run.

LangGraph ships no store conformance suite (``langgraph-checkpoint-conformance`` covers checkpointers only), so
the contract below is written from ``BaseStore``'s documented semantics and LangGraph's ``InMemoryStore``
behaviour: put/get/update/delete, prefix search with filters and paging, semantic search, list_namespaces with
prefix/suffix/wildcards/max_depth/paging, async variants, batch order and namespace validation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import GetOp, InvalidNamespaceError, Item, PutOp, SearchOp

from remem import AsyncMemory, ConfigurationError, InvalidUserIdError, Memory, ValidationError
from remem.integrations.langgraph import RememStore


@pytest.fixture
def store(fake_memory: Memory) -> RememStore:
    return RememStore(fake_memory)


# -- contract ------------------------------------------------------------------------------------------------
def test_put_get_update_delete(store: RememStore) -> None:
    ns = ("alice", "memories")
    assert store.get(ns, "k1") is None
    store.put(ns, "k1", {"text": "Alice likes green tea", "n": 1})
    item = store.get(ns, "k1")
    assert isinstance(item, Item)
    assert (item.namespace, item.key, item.value) == (ns, "k1", {"text": "Alice likes green tea", "n": 1})
    created = item.created_at
    store.put(ns, "k1", {"text": "Alice likes coffee", "n": 2})
    updated = store.get(ns, "k1")
    assert updated is not None and updated.value == {"text": "Alice likes coffee", "n": 2}
    assert updated.created_at == created and updated.updated_at > created
    store.delete(ns, "k1")
    assert store.get(ns, "k1") is None
    store.delete(ns, "k1")  # deleting a missing key is a no-op, as in LangGraph's stores
    store.put(ns, "k1", {"text": "back again"})  # a deleted key can be put again
    again = store.get(ns, "k1")
    assert again is not None and again.value == {"text": "back again"}
    store.delete(ns, "k1")
    store.put(ns, "k1", {"text": "third life"})
    third = store.get(ns, "k1")
    assert third is not None and third.value == {"text": "third life"}


def test_items_are_remem_facts_with_history(store: RememStore, fake_memory: Memory) -> None:
    store.put(("alice", "memories", "work"), "k", {"text": "Alice works at ACME"})
    store.put(("alice", "memories", "work"), "k", {"text": "Alice works at Initech"})
    (record,) = fake_memory.list(user_id="alice").items
    assert record.kind == "fact"
    assert record.text == "Alice works at Initech"
    assert record.categories == ["langgraph", "langgraph/memories", "langgraph/memories/work"]
    assert [e.event.value for e in fake_memory.history(record.id, user_id="alice")] == ["ADD", "UPDATE"]


def test_same_value_under_two_keys_is_two_items(store: RememStore) -> None:
    ns = ("alice", "memories")
    store.put(ns, "a", {"text": "same words"})
    store.put(ns, "b", {"text": "same words"})
    assert sorted(i.key for i in store.search(ns)) == ["a", "b"]
    assert sorted(i.key for i in store.search(ns, query="same words")) == ["a", "b"]


def test_search_prefix_filter_and_paging(store: RememStore) -> None:
    for i in range(6):
        store.put(("alice", "docs", "even" if i % 2 == 0 else "odd"), f"d{i}", {"text": f"document {i}", "i": i,
                                                                                 "meta": {"kind": "doc"}})
    store.put(("alice", "other"), "x", {"text": "not a doc", "i": 100})
    assert sorted(i.key for i in store.search(("alice", "docs"), limit=10)) == [f"d{i}" for i in range(6)]
    assert sorted(i.key for i in store.search(("alice", "docs", "odd"))) == ["d1", "d3", "d5"]
    assert len(store.search(("alice",), limit=100)) == 7
    assert [i.key for i in store.search(("alice", "docs"), filter={"i": 4})] == ["d4"]
    assert sorted(i.key for i in store.search(("alice",), filter={"i": {"$gte": 3, "$lt": 5}})) == ["d3", "d4"]
    assert sorted(i.key for i in store.search(("alice",), filter={"i": {"$ne": 100}}, limit=10)) == [
        f"d{i}" for i in range(6)]
    assert len(store.search(("alice",), filter={"meta": {"kind": "doc"}}, limit=10)) == 6
    assert store.search(("alice",), filter={"i": {"$gt": 100}}) == []
    newest_first = [i.key for i in store.search(("alice", "docs"), limit=10)]
    assert newest_first == ["d5", "d4", "d3", "d2", "d1", "d0"]
    assert [i.key for i in store.search(("alice", "docs"), limit=2, offset=1)] == ["d4", "d3"]
    assert store.search(("alice", "docs"), limit=2, offset=6) == []


def test_semantic_search_uses_index_fields(store: RememStore) -> None:
    ns = ("alice", "memories")
    store.put(ns, "tea", {"text": "Alice drinks green tea every morning", "tag": "zzz"})
    store.put(ns, "bike", {"text": "Alice rides her bike to work"})
    store.put(ns, "hidden", {"text": "green tea is hidden here"}, index=False)
    store.put(ns, "tagged", {"text": "nothing", "tag": "green tea"}, index=["tag"])
    hits = store.search(ns, query="green tea")
    keys = [h.key for h in hits]
    assert keys[0] in ("tea", "tagged") and set(keys[:2]) == {"tea", "tagged"}
    assert "hidden" not in keys  # index=False: found by filter only
    assert all(h.score is not None and h.score > 0 for h in hits)
    assert [i.key for i in store.search(ns, filter={"text": "green tea is hidden here"})] == ["hidden"]
    assert [h.key for h in store.search(ns, query="green tea", filter={"tag": "zzz"})] == ["tea"]


def test_store_index_fields(fake_memory: Memory) -> None:
    store = RememStore(fake_memory, index={"fields": ["summary"]})
    store.put(("alice", "notes"), "n", {"summary": "quarterly budget", "body": "kiwi kiwi kiwi"})
    assert [h.key for h in store.search(("alice",), query="quarterly budget")] == ["n"]
    assert [r.text for r in fake_memory.list(user_id="alice").items] == ["quarterly budget"]  # body not indexed
    with pytest.raises(ConfigurationError, match="only 'fields'"):
        RememStore(fake_memory, index={"dims": 384, "embed": "openai:text-embedding-3-small"})


def test_list_namespaces(fake_memory: Memory) -> None:
    store = RememStore(fake_memory, list_all_users=True)  # the admin's view: every user's namespaces
    for ns in [("alice", "a", "b", "c"), ("alice", "a", "b", "d"), ("alice", "x"), ("bob", "a", "b", "c")]:
        store.put(ns, "k", {"text": "t"})
    assert store.list_namespaces() == [("alice", "a", "b", "c"), ("alice", "a", "b", "d"), ("alice", "x"),
                                       ("bob", "a", "b", "c")]
    assert store.list_namespaces(prefix=("alice",)) == [("alice", "a", "b", "c"), ("alice", "a", "b", "d"),
                                                       ("alice", "x")]
    assert store.list_namespaces(prefix=("alice", "a")) == [("alice", "a", "b", "c"), ("alice", "a", "b", "d")]
    assert store.list_namespaces(suffix=("c",)) == [("alice", "a", "b", "c"), ("bob", "a", "b", "c")]
    assert store.list_namespaces(prefix=("*", "a", "*", "c")) == [("alice", "a", "b", "c"), ("bob", "a", "b", "c")]
    assert store.list_namespaces(prefix=("alice",), max_depth=2) == [("alice", "a"), ("alice", "x")]
    assert store.list_namespaces(prefix=("alice",), limit=1, offset=1) == [("alice", "a", "b", "d")]
    store.delete(("alice", "x"), "k")
    assert ("alice", "x") not in store.list_namespaces(prefix=("alice",))


def test_listing_never_crosses_users_by_default(fake_memory: Memory) -> None:
    """Review 2, issue 14: ``list_namespaces()`` with no prefix listed every user's namespaces (other tenants'
    too). An unbound store now refuses it; a store bound to users lists only theirs and reaches no one else."""
    everyone = RememStore(fake_memory, list_all_users=True)
    for ns in [("alice", "notes"), ("bob", "notes"), ("acme:carol", "notes")]:
        everyone.put(ns, "k", {"text": "t"})
    unbound = RememStore(fake_memory)
    for ask in [{}, {"suffix": ("notes",)}, {"prefix": ("*", "notes")}]:
        with pytest.raises(InvalidNamespaceError, match="would list every user's namespaces"):
            unbound.list_namespaces(**ask)
    assert unbound.list_namespaces(prefix=("bob",)) == [("bob", "notes")]  # naming the user is fine
    alice = RememStore(fake_memory, users="alice")
    assert alice.list_namespaces() == [("alice", "notes")]
    assert alice.list_namespaces(suffix=("notes",)) == [("alice", "notes")]
    assert RememStore(fake_memory, users=["alice", "bob"]).list_namespaces() == [("alice", "notes"),
                                                                                  ("bob", "notes")]
    for op in [lambda: alice.list_namespaces(prefix=("bob",)), lambda: alice.get(("bob", "notes"), "k"),
               lambda: alice.search(("bob",), query="t"), lambda: alice.put(("bob", "notes"), "j", {"text": "x"})]:
        with pytest.raises(InvalidNamespaceError, match="'bob' is not one of this store's users"):
            op()
    assert fake_memory.list(user_id="bob").total == 1
    with pytest.raises(ConfigurationError, match="list_all_users=True is for a store not bound"):
        RememStore(fake_memory, users="alice", list_all_users=True)
    with pytest.raises(InvalidUserIdError):
        RememStore(fake_memory, users=["alice", "not valid!"])


def test_values_beyond_remem_limits_are_validation_errors(store: RememStore) -> None:
    """A pydantic ValidationError (not remem's) escaped for these; each is now remem's, naming what is wrong."""
    ns = ("alice", "m")
    cases = [
        (lambda: store.put(ns, "k\ud800", {"text": "x"}), r"key 'k\\ud800' of \('alice', 'm'\) contains a lone surrogate"),
        (lambda: store.put(ns, "k\x00", {"text": "x"}), r"contains a NUL character \(position 1\)"),
        (lambda: store.put(ns, "k", {"text": "x", "n": float("nan")}),
         r"cannot store \('alice', 'm'\)/'k': metadata\.langgraph\.value\.n is nan"),
        (lambda: store.put(ns, "k", {"a": {"b": {"c": {"d": {"e": {"f": {"g": "x"}}}}}}}),
         r"metadata\.langgraph\.value\.a\.b\.c\.d\.e\.f is nested more than 8 levels deep"),
    ]
    for put, message in cases:
        with pytest.raises(ValidationError, match=message):
            put()
    with pytest.raises(InvalidNamespaceError, match=r"invalid namespace label 'm\\ud800'"):
        store.put(("alice", "m\ud800"), "k", {"text": "x"})
    with pytest.raises(InvalidNamespaceError, match=r"invalid namespace label 'a\\nb'"):
        store.put(("alice", "a\nb"), "k", {"text": "x"})
    store.put(ns, "k", {"a": {"b": {"c": {"d": {"e": {"f": "x"}}}}}})  # 6 levels: the documented limit
    item = store.get(ns, "k")
    assert item is not None and item.value["a"]["b"]["c"]["d"]["e"] == {"f": "x"}


def test_user_label_is_the_isolation_boundary(fake_memory: Memory) -> None:
    store = RememStore(fake_memory, user_label=1)
    store.put(("memories", "alice"), "k", {"text": "Alice's secret recipe"})
    store.put(("memories", "bob"), "k", {"text": "Bob's bike"})
    assert store.get(("memories", "bob"), "k") is not None
    assert [i.value["text"] for i in store.search(("memories", "bob"), query="secret recipe")] == ["Bob's bike"]
    assert store.search(("memories", "bob"), filter={"text": "Alice's secret recipe"}) == []
    assert [r.text for r in fake_memory.list(user_id="bob").items] == ["Bob's bike"]
    with pytest.raises(InvalidNamespaceError, match="no user label"):
        store.search(("memories",), query="secret")  # a prefix above the user would search everyone
    with pytest.raises(InvalidUserIdError):
        store.put(("memories", "not a valid id!"), "k", {"text": "x"})


def test_invalid_namespaces_and_ttl(store: RememStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(("alice", "a.b"), "k", {"text": "x"})
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {"text": "x"})
    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp(("alice", ""), "k", {"text": "x"})])  # batch() skips BaseStore's own checks
    with pytest.raises(NotImplementedError):
        store.put(("alice",), "k", {"text": "x"}, ttl=5)


def test_batch_runs_in_order(store: RememStore) -> None:
    ns = ("alice", "b")
    results = store.batch([PutOp(ns, "k", {"text": "one"}), GetOp(ns, "k"), PutOp(ns, "k", {"text": "two"}),
                           GetOp(ns, "k"), SearchOp(ns), PutOp(ns, "k", None), GetOp(ns, "k")])
    assert results[0] is None
    assert isinstance(results[1], Item) and results[1].value == {"text": "one"}
    assert isinstance(results[3], Item) and results[3].value == {"text": "two"}
    assert isinstance(results[4], list) and [i.key for i in results[4]] == ["k"]
    assert results[6] is None


def test_async_api(fake_memory: Memory) -> None:
    store = RememStore(AsyncMemory(sync=fake_memory))  # an AsyncMemory works as well as a Memory

    async def scenario() -> tuple[Any, ...]:
        ns = ("alice", "async")
        await store.aput(ns, "k", {"text": "async tea"})
        got = await store.aget(ns, "k")
        hits = await store.asearch(("alice",), query="async tea")
        spaces = await store.alist_namespaces(prefix=("alice",))
        await store.adelete(ns, "k")
        gone = await store.aget(ns, "k")
        return got, hits, spaces, gone

    got, hits, spaces, gone = asyncio.run(scenario())
    assert got.value == {"text": "async tea"}
    assert [h.key for h in hits] == ["k"]
    assert spaces == [("alice", "async")]
    assert gone is None


def test_items_survive_reopen(tmp_path: Path) -> None:
    with Memory(tmp_path / "h", embedder="fake") as m:
        RememStore(m).put(("alice", "m"), "k", {"text": "persisted", "n": [1, 2]})
    with Memory(tmp_path / "h", embedder="fake") as m:
        item = RememStore(m).get(("alice", "m"), "k")
        assert item is not None and item.value == {"text": "persisted", "n": [1, 2]}


# -- a real graph ------------------------------------------------------------------------------------------------
class State(MessagesState):
    recalled: list[str]


@dataclass
class Context:
    user_id: str


def build_graph(store: RememStore, replies: list[str]) -> Any:
    """The LangGraph long-term-memory pattern: a node recalls the user's memories from ``runtime.store``, calls
    the chat model with them, and stores what the user asked it to remember. The user comes from the run's
    context (the host), never from the model."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))

    def call_model(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        assert runtime.store is not None
        namespace = (runtime.context.user_id, "memories")
        last = state["messages"][-1].content
        assert isinstance(last, str)
        recalled = [item.value["text"] for item in runtime.store.search(namespace, query=last, limit=3)]
        system = SystemMessage(content="Known about the user:\n" + "\n".join(recalled))
        reply = model.invoke([system, *state["messages"]])
        if last.lower().startswith("remember"):
            runtime.store.put(namespace, f"m{len(recalled)}", {"text": last.split(":", 1)[1].strip()})
        return {"messages": [reply], "recalled": recalled}

    builder = StateGraph(State, context_schema=Context)
    builder.add_node("call_model", call_model)
    builder.add_edge(START, "call_model")
    return builder.compile(store=store)


def test_graph_saves_for_alice_and_a_new_thread_recalls_it_bob_never_sees_it(fake_memory: Memory) -> None:
    store = RememStore(fake_memory)
    graph = build_graph(store, ["Noted.", "You are vegan.", "I don't know."])
    first = graph.invoke({"messages": [HumanMessage("Remember: Alice is vegan")]},
                         context=Context(user_id="alice"))
    assert first["messages"][-1].content == "Noted."
    second = graph.invoke({"messages": [HumanMessage("What do you know about my diet? vegan?")]},
                          context=Context(user_id="alice"))
    assert second["recalled"] == ["Alice is vegan"]
    assert second["messages"][-1].content == "You are vegan."
    other = graph.invoke({"messages": [HumanMessage("What do you know about my diet? vegan?")]},
                         context=Context(user_id="bob"))
    assert other["recalled"] == []
    assert [r.text for r in fake_memory.list(user_id="alice").items] == ["Alice is vegan"]
    assert fake_memory.list(user_id="bob").total == 0
