"""Embedders: the packaged local ONNX model (real), the fake, and remote ones with HTTP stubbed at the transport."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from remem import ConfigurationError, EmbeddingError, Memory, ProviderNotFoundError, get_embedder
from remem.embedders import Embedder
from remem.embedders.fake import FakeEmbedder
from remem.embedders.local import LocalOnnxEmbedder, _verified_model_path, verify_model
from remem.embedders.ollama import OllamaEmbedder
from remem.embedders.openai import OpenAIEmbedder


@pytest.fixture(scope="module")
def local() -> LocalOnnxEmbedder:
    return LocalOnnxEmbedder()


SENTENCES = [
    "The cat sits on the mat.",
    "A kitten is sitting on a rug.",
    "Quarterly revenue grew by eight percent.",
    "I moved to Berlin last year and I love it there.",
    "short",
    ("A much longer sentence that goes on and on about the weather, the mountains, the sea and many other things "
     "so that it needs far more word pieces than every other sentence in this batch."),
]


# -- local ONNX model --------------------------------------------------------------------------------------
def test_local_vectors_are_unit_norm_384d(local: LocalOnnxEmbedder) -> None:
    vectors = local.embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert local.dimensions == 384 and local.name.startswith("local:")


def test_local_paraphrases_are_closer_than_unrelated(local: LocalOnnxEmbedder) -> None:
    cat, kitten, revenue = local.embed(SENTENCES[:3])
    assert cat @ kitten > 0.5
    assert cat @ kitten > cat @ revenue + 0.3
    assert kitten @ revenue < 0.2
    a, b, c = local.embed(["Where does she live now?", "She moved to Berlin in 2021.", "Her favourite food is sushi."])
    assert a @ b > a @ c


def test_local_batch_equals_single_and_is_deterministic(local: LocalOnnxEmbedder) -> None:
    batch = local.embed(SENTENCES)
    singles = np.vstack([local.embed([s]) for s in SENTENCES])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    np.testing.assert_array_equal(batch, local.embed(SENTENCES))
    np.testing.assert_allclose(LocalOnnxEmbedder().embed(SENTENCES[:2]), batch[:2], atol=1e-6)
    assert local.embed([]).shape == (0, 384)


def test_local_truncates_long_input(local: LocalOnnxEmbedder) -> None:
    long = "word " * 2000
    (vector,) = local.embed([long])
    assert np.isfinite(vector).all() and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_model_checksum_failure_raises(tmp_path: Path) -> None:
    original = _verified_model_path()
    assert verify_model(original) == original
    corrupt = tmp_path / "model.onnx"
    shutil.copyfile(original, corrupt)
    with corrupt.open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(EmbeddingError) as info:
        verify_model(corrupt)
    assert info.value.context["path"] == str(corrupt)
    with pytest.raises(EmbeddingError):
        LocalOnnxEmbedder(model_path=corrupt)
    with pytest.raises(EmbeddingError):
        verify_model(tmp_path / "missing.onnx")


def test_local_memory_search_is_semantic(local: LocalOnnxEmbedder, tmp_path: Path) -> None:
    with Memory(tmp_path / "home", embedder=local) as m:
        m.add(["My daughter Emma turns seven in June", "I work as a nurse at the city hospital",
               "We adopted a golden retriever puppy"], user_id="alice")
        hits = m.search("what is her job?", user_id="alice", mode="dense")
        assert hits[0].record.text == "I work as a nurse at the city hospital"
        assert m.search("pets", user_id="alice", mode="dense")[0].record.text.endswith("retriever puppy")


# -- fake --------------------------------------------------------------------------------------------------
def test_fake_is_deterministic_and_normalised() -> None:
    a, b = FakeEmbedder(), FakeEmbedder()
    np.testing.assert_array_equal(a.embed(SENTENCES), b.embed(SENTENCES))
    np.testing.assert_array_equal(a.embed(SENTENCES)[2], a.embed([SENTENCES[2]])[0])
    np.testing.assert_allclose(np.linalg.norm(a.embed(SENTENCES), axis=1), 1.0, atol=1e-5)
    x, y, z = a.embed(["green tea every morning", "I drink green tea", "quarterly revenue report"])
    assert x @ y > x @ z
    assert get_embedder("fake:32").dimensions == 32 and get_embedder("fake").name == "fake:64"


# -- registry and data-dir binding ---------------------------------------------------------------------------
def test_unknown_provider() -> None:
    with pytest.raises(ProviderNotFoundError) as info:
        get_embedder("nosuch:model")
    assert "nosuch" in str(info.value) and info.value.context["spec"] == "nosuch:model"
    assert isinstance(get_embedder("fake"), Embedder)


def test_data_dir_refuses_another_embedder(tmp_path: Path) -> None:
    with Memory(tmp_path / "home", embedder="fake") as m:
        m.add("built with the fake embedder", user_id="u")
    for other in ("fake:32", FakeEmbedder(128)):
        with pytest.raises(ConfigurationError) as info:
            Memory(tmp_path / "home", embedder=other)
        assert info.value.context["stored"]["embedder"] == "fake:64"
    with Memory(tmp_path / "home", embedder="fake") as again:  # the lock was released by the refusals
        assert again.list(user_id="u").total == 1


# -- remote embedders over a stubbed transport ---------------------------------------------------------------
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """An httpx MockTransport handler that answers from a script and keeps the requests."""

    def __init__(self, *responses: Handler) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses[min(len(self.requests), len(self.responses)) - 1](request)

    @property
    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(r.content) for r in self.requests]


def openai_ok(dims: int) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        data = [{"index": i, "embedding": [float(i + 1)] + [0.5] * (dims - 1)} for i in range(len(texts))]
        return httpx.Response(200, json={"data": data[::-1], "model": "text-embedding-3-small"})  # any order
    return answer


def status(code: int) -> Handler:
    return lambda request: httpx.Response(code, json={"error": {"message": f"status {code}"}})


def openai(recorder: Recorder, **kw: object) -> OpenAIEmbedder:
    return OpenAIEmbedder("text-embedding-3-small", api_key="sk-test", base_url="http://stub/v1",
                          transport=httpx.MockTransport(recorder), **kw)  # type: ignore[arg-type]


def test_openai_pins_and_sends_dimensions() -> None:
    rec = Recorder(openai_ok(256))
    emb = openai(rec, dimensions=256)
    vectors = emb.embed(["a", "b", "c"])
    assert vectors.shape == (3, 256) and emb.dimensions == 256 and emb.name.endswith("@256")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0, 0] < vectors[2, 0]  # rows follow the input order, not the response order
    (body,) = rec.bodies
    assert body == {"model": "text-embedding-3-small", "input": ["a", "b", "c"], "dimensions": 256}
    assert rec.requests[0].headers["authorization"] == "Bearer sk-test"
    assert str(rec.requests[0].url) == "http://stub/v1/embeddings"


def test_openai_wrong_dimension_is_an_error() -> None:
    with pytest.raises(EmbeddingError):
        openai(Recorder(openai_ok(1536)), dimensions=256).embed(["a"])


def test_openai_retries_429_then_succeeds() -> None:
    rec = Recorder(status(429), openai_ok(8))
    assert openai(rec, dimensions=8).embed(["a"]).shape == (1, 8)
    assert len(rec.requests) == 2


def test_openai_400_is_an_error_without_retry() -> None:
    rec = Recorder(status(400))
    with pytest.raises(EmbeddingError) as info:
        openai(rec, dimensions=8).embed(["a"])
    assert "400" in str(info.value) and len(rec.requests) == 1


def test_openai_garbage_response_is_an_error() -> None:
    with pytest.raises(EmbeddingError):
        openai(Recorder(lambda r: httpx.Response(200, json={"nope": 1})), dimensions=8).embed(["a"])
    with pytest.raises(EmbeddingError):
        openai(Recorder(lambda r: httpx.Response(200, text="<html>")), dimensions=8).embed(["a"])


def test_openai_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError):
        OpenAIEmbedder("text-embedding-3-small")
    with pytest.raises(ConfigurationError):
        OpenAIEmbedder("some-unknown-model", api_key="k")  # no known default dimension


def ollama_ok(dims: int) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        return httpx.Response(200, json={"embeddings": [[1.0 + i] * dims for i in range(len(texts))]})
    return answer


def ollama(recorder: Recorder, **kw: object) -> OllamaEmbedder:
    return OllamaEmbedder("nomic-embed-text", base_url="http://stub:11434",
                          transport=httpx.MockTransport(recorder), **kw)  # type: ignore[arg-type]


def test_ollama_learns_then_enforces_dimension() -> None:
    rec = Recorder(ollama_ok(16), ollama_ok(16), ollama_ok(8))
    emb = ollama(rec)
    assert emb.dimensions == 16  # a probe request
    assert emb.embed(["a", "b"]).shape == (2, 16)
    assert rec.bodies[1] == {"model": "nomic-embed-text", "input": ["a", "b"]}
    assert str(rec.requests[0].url) == "http://stub:11434/api/embed"
    with pytest.raises(EmbeddingError):
        emb.embed(["c"])  # the server now answers 8-d vectors


def test_ollama_pinned_dimension_mismatch() -> None:
    with pytest.raises(EmbeddingError):
        ollama(Recorder(ollama_ok(16)), dimensions=32).embed(["a"])


def test_ollama_retries_429_and_fails_on_400() -> None:
    rec = Recorder(status(429), ollama_ok(4))
    assert ollama(rec, dimensions=4).embed(["a"]).shape == (1, 4) and len(rec.requests) == 2
    rec = Recorder(status(400))
    with pytest.raises(EmbeddingError):
        ollama(rec, dimensions=4).embed(["a"])
    assert len(rec.requests) == 1
    with pytest.raises(EmbeddingError):
        ollama(Recorder(lambda r: httpx.Response(200, json={"embeddings": []})), dimensions=4).embed(["a"])


def test_litellm_embedder_over_stubbed_http() -> None:
    """LiteLLM (here its OpenAI route) with the HTTP layer stubbed by respx: dimension sent and enforced."""
    pytest.importorskip("litellm")
    respx = pytest.importorskip("respx")
    from remem.embedders.litellm import LiteLLMEmbedder

    def answer(dims: int) -> Handler:
        def reply(request: httpx.Request) -> httpx.Response:
            texts = json.loads(request.content)["input"]
            data = [{"object": "embedding", "index": i, "embedding": [1.0 + i] * dims} for i in range(len(texts))]
            return httpx.Response(200, json={"object": "list", "data": data, "model": "text-embedding-3-small",
                                             "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        return reply

    def make() -> LiteLLMEmbedder:
        return LiteLLMEmbedder("openai/text-embedding-3-small", dimensions=8, api_key="sk-test",
                               api_base="http://stub/v1")

    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("http://stub/v1/embeddings").mock(side_effect=answer(8))
        vectors = make().embed(["a", "b"])
        assert vectors.shape == (2, 8) and make().name == "litellm:openai/text-embedding-3-small"
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert json.loads(route.calls[0].request.content)["dimensions"] == 8
    with respx.mock() as mock:
        mock.post("http://stub/v1/embeddings").mock(side_effect=answer(16))
        with pytest.raises(EmbeddingError):
            make().embed(["a"])
    with respx.mock() as mock:
        mock.post("http://stub/v1/embeddings").mock(return_value=httpx.Response(400, json={"error": {"message": "bad"}}))
        with pytest.raises(EmbeddingError):
            make().embed(["a"])
