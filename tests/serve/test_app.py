"""The HTTP service on tiny trained runs, through FastAPI's TestClient (no sockets)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recadapt.cli import app as cli_app
from recadapt.errors import RecAdaptError
from recadapt.serve.app import create_app
from recadapt.train.runs import load_run


@pytest.fixture(scope="module")
def sasrec(sasrec_run):
    run = load_run(sasrec_run)
    return run, TestClient(create_app(run))


@pytest.fixture
def iisan(iisan_run, fake_encoders_loaded):
    """A fresh app per test: /items changes the catalogue."""
    run = load_run(iisan_run)
    return run, TestClient(create_app(run))


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def _refused(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    for fragment in fragments:
        assert fragment in detail, detail


def test_health_and_openapi(sasrec) -> None:
    _, client = sasrec
    health = client.get("/health").json()
    assert {k: health[k] for k in ("status", "model", "num_items", "index", "recall_at_10")} \
        == {"status": "ok", "model": "sasrec", "num_items": 30, "index": "exact",
            "recall_at_10": 1.0}
    assert "ann threshold" in health["index_params"]["chosen"]
    assert health["batching"]["window_ms"] == 1.0 and health["batching"]["max_batch"] == 64
    schema = client.get("/openapi.json").json()
    assert {"/health", "/recommend", "/similar", "/items"} <= set(schema["paths"])
    fields = schema["components"]["schemas"]["RecommendRequest"]["properties"]
    assert "description" in fields["history"]


def test_recommend_equals_the_cli_and_excludes_the_history(sasrec, sasrec_run) -> None:
    _, client = sasrec
    result = CliRunner().invoke(cli_app, ["recommend", str(sasrec_run), "--user", "u0", "-k", "5"])
    assert result.exit_code == 0, result.output
    expected = json.loads(result.stdout)["items"]
    served = client.post("/recommend", json={"user_id": "u0", "k": 5}).json()["items"]
    assert [i["item_id"] for i in served] == [i["item_id"] for i in expected]
    assert [i["score"] for i in served] == pytest.approx([i["score"] for i in expected])
    assert served[0]["title"].startswith("title of item")

    history = ["i1", "i2", "i3"]
    ids = _ids(client.post("/recommend", json={"history": history, "k": 29}))
    assert ids[0] == "i4"  # the cycle's next item
    assert len(ids) == 27 and not set(history) & set(ids)


def test_unknown_ids_and_bad_requests_are_one_line_4xx(sasrec) -> None:
    _, client = sasrec
    _refused(client.post("/recommend", json={"user_id": "nobody"}), 404, "user_id", "nobody")
    _refused(client.post("/recommend", json={"history": ["i1", "zzz"]}), 404,
             "history[1]", "zzz")
    _refused(client.post("/similar", json={"item_id": "zzz"}), 404, "item_id", "zzz")
    _refused(client.post("/recommend", json={"history": []}), 422, "history is empty")
    _refused(client.post("/recommend", json={"user_id": "u0", "history": ["i1"]}), 422,
             "exactly one of user_id and history")
    _refused(client.post("/recommend", json={"user_id": "u0", "k": 0}), 422, "k:")
    _refused(client.post("/recommend", json={"user": "u0"}), 422, "user")
    _refused(client.post("/recommend", json={"user_id": "u0", "k": 10**9}), 422, "k:")
    _refused(client.post("/recommend", content=b'{"user_id": "u0", "k": 5',
                         headers={"content-type": "application/json"}), 422,
             "malformed JSON at character")


def test_similar_is_the_cosine_of_item_vectors(sasrec) -> None:
    run, client = sasrec
    with torch.no_grad():
        table = run.model.item_embeddings()
    seven = run.prepared.dataset.item_index("i7")
    cosine = torch.nn.functional.cosine_similarity(table, table[seven].unsqueeze(0), dim=1)
    cosine[[0, seven]] = -2
    expected = [str(run.prepared.dataset.item_ids[i]) for i in cosine.topk(5).indices]
    response = client.post("/similar", json={"item_id": "i7", "k": 5})
    assert _ids(response) == expected
    assert [i["score"] for i in response.json()["items"]] == pytest.approx(
        cosine.topk(5).values.tolist(), abs=1e-5)


def test_id_models_refuse_new_items(sasrec) -> None:
    _, client = sasrec
    new = {"items": [{"item_id": "new", "fields": {"title": "a new film"}}]}
    _refused(client.post("/items", json=new), 400, "'sasrec' has no content tower")


def _clone(item: int, new_id: str) -> dict:
    return {"item_id": new_id, "fields": {"title": f"title of item {item}",
                                          "kind": f"kind {item % 3}"}}


def test_new_items_are_embedded_like_catalogue_items_and_recommended(iisan) -> None:
    run, client = iisan
    added = client.post("/items", json={"items": [_clone(5, "clone5"), _clone(9, "clone9")]})
    assert added.status_code == 200, added.text
    # a loaded run has no folder to keep them in
    assert added.json() == {"added": ["clone5", "clone9"], "num_items": 32, "saved": False}
    assert client.get("/health").json()["num_items"] == 32

    index = client.app.state.service.catalogue.index
    five = run.prepared.dataset.item_index("i5")
    torch.testing.assert_close(index.vectors[31], index.vectors[five], rtol=0, atol=1e-6)
    with torch.no_grad():  # the model's own table now holds the new items too
        torch.testing.assert_close(run.model.item_embeddings()[31], index.vectors[31])

    similar = client.post("/similar", json={"item_id": "clone5", "k": 1}).json()["items"]
    assert similar[0]["item_id"] == "i5" and similar[0]["score"] == pytest.approx(1, abs=1e-5)
    after_four = client.post("/recommend", json={"history": ["i1", "i2", "i3", "i4"],
                                                 "k": 2}).json()["items"]
    assert {i["item_id"] for i in after_four} == {"i5", "clone5"}
    assert after_four[0]["score"] == pytest.approx(after_four[1]["score"], abs=1e-5)
    assert {i["title"] for i in after_four} == {"title of item 5"}
    # a new item is a valid history item: it stands for its twin
    from_clone = _ids(client.post("/recommend", json={"history": ["clone9"], "k": 5}))
    from_nine = _ids(client.post("/recommend", json={"history": ["i9"], "k": 5}))
    assert [i for i in from_clone if i != "i9"][:4] == [i for i in from_nine
                                                        if i != "clone9"][:4]


def test_new_items_refused_with_the_field_named(iisan) -> None:
    _, client = iisan
    _refused(client.post("/items", json={"items": [_clone(5, "i5")]}), 409,
             "items[0].item_id", "'i5'")
    _refused(client.post("/items", json={"items": [_clone(5, "a"), _clone(6, "a")]}), 409,
             "items[1].item_id")
    bad = {"items": [{"item_id": "x", "fields": {"title": "t", "colour": "red"}}]}
    _refused(client.post("/items", json=bad), 400, "items[0].fields", "'colour'")
    _refused(client.post("/items", json={"items": []}), 422, "items")
    assert client.get("/health").json()["num_items"] == 30


def test_concurrent_recommendations_while_items_are_added(iisan) -> None:
    _, client = iisan
    failures: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            response = client.post("/recommend", json={"user_id": "u3", "k": 5})
            if response.status_code != 200 or len(response.json()["items"]) != 5:
                failures.append(response.text)

    readers = [threading.Thread(target=ask) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        for batch in range(5):
            items = [_clone(i, f"new{batch}-{i}") for i in range(1, 5)]
            assert client.post("/items", json={"items": items}).status_code == 200
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert not failures, failures[:3]
    assert client.get("/health").json()["num_items"] == 50
    ids = _ids(client.post("/recommend", json={"history": ["i1", "i2", "i3", "i4"], "k": 7}))
    assert {"i5", "new0-1"} & set(ids)  # twins of the next items are recommendable


def test_the_ann_path_serves_the_same_recommendations(sasrec, tmp_path) -> None:
    run, exact = sasrec
    for kind in ("ivf", "hnsw"):
        approximate = TestClient(create_app(run, index=kind, recall_target=1.0,
                                            state_dir=tmp_path / kind))
        health = approximate.get("/health").json()
        assert health["index"] == f"faiss-{kind}" and health["recall_at_10"] == 1.0
        params = health["index_params"]
        assert params["recall_target"] == 1.0 and params["source"].startswith("built")
        assert params["held_queries"] >= 10 and ("nprobe" in params or "efSearch" in params)
        for user in ("u0", "u5", "u11"):
            request = {"user_id": user, "k": 5}
            assert _ids(approximate.post("/recommend", json=request)) == _ids(
                exact.post("/recommend", json=request))
        # the next start loads it instead of building it
        again = TestClient(create_app(run, index=kind, recall_target=1.0,
                                      state_dir=tmp_path / kind))
        assert again.get("/health").json()["index_params"]["source"].startswith("loaded")


def _concurrently(client: TestClient, requests: list[dict]) -> list:
    """Every request at once, from as many threads (the batcher sees them together)."""
    answers: list = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def ask(position: int) -> None:
        start.wait()
        answers[position] = client.post("/recommend", json=requests[position])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_micro_batched_answers_equal_one_at_a_time_answers(sasrec_run) -> None:
    run = load_run(sasrec_run)
    alone = TestClient(create_app(run, batch_window_ms=0))
    batched = TestClient(create_app(run, batch_window_ms=50))
    requests = [{"user_id": f"u{u}", "k": 3 + u % 5} for u in range(12)] + [
        {"history": ["i1", "i2"], "k": 4}, {"history": ["i9"], "k": 29},
        {"user_id": "nobody"}, {"history": ["i1", "zzz"]}]
    expected = [alone.post("/recommend", json=r) for r in requests]
    for _ in range(3):
        got = _concurrently(batched, requests)
        for mine, theirs in zip(got, expected, strict=True):
            assert mine.status_code == theirs.status_code, mine.text
            if theirs.status_code != 200:
                assert mine.json() == theirs.json()
                continue
            a, b = mine.json()["items"], theirs.json()["items"]
            assert [i["item_id"] for i in a] == [i["item_id"] for i in b]
            assert [i["score"] for i in a] == pytest.approx([i["score"] for i in b], abs=1e-5)
    service = batched.app.state.service
    assert service.batcher.queries == 3 * 14  # the 4xx ones never reach the batcher
    assert service.batcher.batches < service.batcher.queries  # some were scored together
    assert alone.app.state.service.batcher.batches == alone.app.state.service.batcher.queries


def test_known_users_are_ranked_from_vectors_computed_at_start(sasrec_run,
                                                              monkeypatch) -> None:
    """A known user's request runs no forward; its answer is the one for their history typed
    in (which does run one)."""
    run = load_run(sasrec_run)
    client = TestClient(create_app(run, batch_window_ms=0))
    forwards = []
    real = run.model.user_embeddings
    monkeypatch.setattr(run.model, "user_embeddings",
                        lambda batch: forwards.append(len(batch["history"])) or real(batch))
    dataset = run.prepared.dataset
    history = [str(dataset.item_ids[i]) for i in dataset.sequences()[dataset.user_index("u3")]]
    known = client.post("/recommend", json={"user_id": "u3", "k": 6}).json()["items"]
    assert forwards == []
    typed = client.post("/recommend", json={"history": history, "k": 6}).json()["items"]
    assert forwards == [1]
    assert [i["item_id"] for i in known] == [i["item_id"] for i in typed]
    assert [i["score"] for i in known] == pytest.approx([i["score"] for i in typed], abs=1e-5)


def test_items_added_are_searchable_at_once_through_the_ann_index(iisan_run,
                                                                  fake_encoders_loaded,
                                                                  tmp_path) -> None:
    run = load_run(iisan_run)
    client = TestClient(create_app(run, index="ivf", recall_target=1.0, state_dir=tmp_path))
    assert client.get("/health").json()["index"] == "faiss-ivf"
    added = client.post("/items", json={"items": [_clone(5, "clone5")]})
    assert added.status_code == 200, added.text
    after_four = _ids(client.post("/recommend", json={"history": ["i1", "i2", "i3", "i4"],
                                                      "k": 2}))
    assert set(after_four) == {"i5", "clone5"}
    assert added.json()["saved"] and (tmp_path / "items_added.json").is_file()
    # the saved index is of the run's own items: a restart loads it and adds clone5 again
    fresh = TestClient(create_app(load_run(iisan_run), index="ivf", recall_target=1.0,
                                  state_dir=tmp_path))
    health = fresh.get("/health").json()
    assert health["num_items"] == 31 and health["index_params"]["source"].startswith("loaded")
    assert _ids(fresh.post("/recommend", json={"history": ["i1", "i2", "i3", "i4"],
                                               "k": 2})) == after_four


def test_items_added_survive_a_restart_and_a_bad_file_is_refused(iisan_run,
                                                                 fake_encoders_loaded,
                                                                 tmp_path) -> None:
    first = TestClient(create_app(load_run(iisan_run), state_dir=tmp_path))
    assert first.post("/items", json={"items": [_clone(5, "clone5")]}).json()["saved"]
    assert first.post("/items", json={"items": [_clone(9, "clone9")]}).json()["saved"]
    saved = tmp_path / "items_added.json"
    assert [i["item_id"] for i in json.loads(saved.read_text())["items"]] == ["clone5",
                                                                              "clone9"]
    again = TestClient(create_app(load_run(iisan_run), state_dir=tmp_path))
    assert again.get("/health").json()["num_items"] == 32
    similar = again.post("/similar", json={"item_id": "clone9", "k": 1}).json()["items"]
    assert similar[0]["item_id"] == "i9" and similar[0]["score"] == pytest.approx(1, abs=1e-5)

    for text, fragment in [('{"items": [{"item_id": "x"}]}', "items.0.fields: Field required"),
                           ("{not json", "items_added.json: Invalid JSON"),
                           (json.dumps({"items": [_clone(5, "i5")]}),
                            "items[0].item_id: 'i5' is already in the catalogue")]:
        saved.write_text(text)
        with pytest.raises(RecAdaptError) as refused:
            create_app(load_run(iisan_run), state_dir=tmp_path)
        message = str(refused.value)
        assert "\n" not in message and fragment in message and "move it away" in message
        assert saved.read_text() == text  # refused, never overwritten


def test_a_new_index_is_tuned_on_the_start_up_user_vectors(sasrec_run, monkeypatch,
                                                           tmp_path) -> None:
    """Building an index runs the users' forward once (the start-up vectors), not again for
    its tuning queries, which are the same vectors."""
    from recadapt.serve.recommend import padded_histories, user_queries, user_vectors

    run = load_run(sasrec_run)
    padded = padded_histories(run)
    assert np.allclose(user_queries(run, padded, known=user_vectors(run, padded)),
                       user_queries(run, padded), atol=1e-6)
    forwards = []
    real = run.model.user_embeddings
    monkeypatch.setattr(run.model, "user_embeddings",
                        lambda batch: forwards.append(len(batch["history"])) or real(batch))
    client = TestClient(create_app(run, index="ivf", recall_target=0.9, state_dir=tmp_path))
    assert client.get("/health").json()["index_params"]["source"].startswith("built")
    assert sum(forwards) == len(padded)  # every user once, nobody twice
