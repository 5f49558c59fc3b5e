"""The HTTP API over a trained run: ``create_app(run_dir)`` → a FastAPI app.

* ``GET /health``: status, model, catalogue size, the index (kind, parameters, where it came
  from, its recall@10 against exact on held queries) and the batching.
* ``POST /recommend``: a known user (their whole history) or a raw history of item ids →
  top-K items by the model's score (inner product), history excluded. An empty history is
  refused (422): no model here has a meaningful answer for "nothing yet" besides popularity,
  which is its own model (serve a popularity run for that).
* ``POST /similar``: an item → the items of highest **cosine** between item vectors.
* ``POST /items``: new items with their content, embedded by a content model's frozen
  encoders and trained item tower, recommendable at once (ID models refuse: 400). When the
  service has a folder (the run's, by default), the added items are written to
  ``items_added.json`` there (atomically, every item added so far) and added again, through
  the same encoders, when the service starts: a restart loses none of them.

Every user's history (left-padded), seen items and — when items are ranked through an index —
user vector are computed once at start (one batched forward: a known user's request runs no
forward at all). ``/recommend`` resolves its request on the event loop and hands it to the
micro-batcher (``serve.batching``): one thread runs one sequence-model forward (for typed-in
histories) and one search for the queries that arrived together, and writes each answer's
JSON, returned as is (no second validation pass). The other endpoints run in FastAPI's thread
pool. One readers-writer lock guards the mutable catalogue
(model sources, index, ids): reads and batches run concurrently, ``/items`` waits for them and
runs alone; its items are searchable as soon as it returns.
Errors are ``{"detail": "<one line naming the field>"}``: 404 unknown ids, 409 duplicates,
400 what the model cannot do, 422 malformed requests.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from recadapt.data.batching import left_pad
from recadapt.errors import RecAdaptError
from recadapt.io import write_json
from recadapt.serve.batching import MAX_BATCH, MicroBatcher, PendingCounter, queued
from recadapt.serve.index import DEFAULT_ANN_THRESHOLD, DEFAULT_RECALL_TARGET, ExactIndex
from recadapt.serve.recommend import (
    check_rankable,
    item_index,
    padded_histories,
    rank_batch,
    ranks_by_dot_product,
    user_vectors,
)
from recadapt.train.runs import LoadedRun, load_run

log = logging.getLogger(__name__)

#: beside the run: every item added through ``/items``, added again at the next start
ADDED_ITEMS_FILE = "items_added.json"


def _as_text(value: Any) -> Any:
    """Raw ids may arrive as JSON numbers (MovieLens ids); they are strings in the dataset."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


RawId = Annotated[str, BeforeValidator(_as_text), Field(min_length=1)]
TopK = Annotated[int, Field(ge=1, le=1000, description="how many items to return")]


class RecommendRequest(BaseModel):
    """Who to recommend for: a known user, or a history typed in."""

    model_config = ConfigDict(extra="forbid")

    user_id: RawId | None = Field(None, description="a raw user id of the training data: "
                                  "their whole interaction history is used")
    history: list[RawId] | None = Field(None, description="raw item ids, oldest first "
                                        "(the model reads the most recent max_seq_len)")
    k: TopK = 10

    @model_validator(mode="after")
    def _one_source(self) -> RecommendRequest:
        if (self.user_id is None) == (self.history is None):
            raise ValueError("give exactly one of user_id and history")
        if self.history is not None and not self.history:
            raise ValueError("history is empty: give at least one item id")
        return self


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: RawId = Field(description="a raw item id of the catalogue")
    k: TopK = 10


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: RawId = Field(description="a raw id not yet in the catalogue")
    fields: dict[str, str | int | float | None] = Field(
        description="item columns as in the training data (e.g. title, genres); an image, "
        "audio or video column holds a path the server can read (relative: to the data folder)"
    )


class AddItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[NewItem] = Field(min_length=1, max_length=1000)


class SavedItems(BaseModel):
    """``items_added.json``: the items added so far, in order (no length limit)."""

    model_config = ConfigDict(extra="forbid")

    items: list[NewItem]


class ScoredItem(BaseModel):
    item_id: str
    title: str | None = Field(description="from the dataset's title column, if any")
    score: float = Field(description="recommend: user · item; similar: cosine")


class ItemList(BaseModel):
    items: list[ScoredItem]


class AddedItems(BaseModel):
    added: list[str] = Field(description="the new items' ids, now recommendable")
    num_items: int = Field(description="catalogue size after adding")
    saved: bool = Field(description=f"written to {ADDED_ITEMS_FILE} beside the run, so the "
                        "next start adds them again (false: no folder, or it is not writable)")


class Health(BaseModel):
    status: str
    model: str
    num_items: int
    index: str = Field(description="exact | faiss-ivf | faiss-ivfpq | faiss-hnsw | model-score "
                       "(ranked by the model's own score, no item vectors)")
    index_params: dict[str, Any] = Field(description="how the index was chosen, built or "
                                         "loaded: nlist/nprobe or efSearch, recall target, "
                                         "tuning and held queries, build/load seconds, source")
    recall_at_10: float | None = Field(description="share of the exact top-10 the index finds "
                                       "on held queries (1 for exact)")
    batching: dict[str, float] = Field(description="window_ms, max_batch, and the batches "
                                       "and queries served so far")


class ServiceError(Exception):
    """A request the service refuses, with its HTTP status and one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writing and self._readers == 0)
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


@dataclass
class Catalogue:
    """What the service ranks: raw ids and titles by item index (row 0 = padding) and the
    index over their vectors (``None``: the model ranks by its own score)."""

    item_ids: list[str]
    titles: list[str | None]
    index: ExactIndex | None
    lookup: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.lookup = {raw: i for i, raw in enumerate(self.item_ids) if i > 0}

    @classmethod
    def of_run(cls, run: LoadedRun, ann_threshold: int | None = DEFAULT_ANN_THRESHOLD,
               recall_target: float = DEFAULT_RECALL_TARGET, index: str = "auto",
               padded: np.ndarray | None = None, folder: Path | None = None,
               known: torch.Tensor | None = None) -> Catalogue:
        """The run's items and their index: an approximate one is loaded from ``folder``
        when saved there from the same item vectors, else built and saved there."""
        dataset = run.prepared.dataset
        ids = [str(raw) for raw in dataset.item_ids]
        titles = [None, *(dataset.item_title(i) for i in range(1, dataset.num_items + 1))]
        return cls(ids, titles, item_index(run, ann_threshold, recall_target, index,
                                           folder, padded, known))

    def extend(self, item_ids: list[str], titles: list[str | None],
               vectors: torch.Tensor) -> None:
        if self.index is not None:
            self.index.add(vectors)
        for raw in item_ids:
            self.lookup[raw] = len(self.item_ids)
            self.item_ids.append(raw)
        self.titles.extend(titles)

    def index_of(self, raw: str, field_name: str) -> int:
        if raw not in self.lookup:
            raise ServiceError(404, f"{field_name}: unknown item id {raw!r}")
        return self.lookup[raw]

    def listed(self, ranked: list[tuple[int, float]]) -> bytes:
        """The ``ItemList`` JSON of ``ranked``, written directly (the shape is fixed)."""
        return json.dumps({"items": [{"item_id": self.item_ids[i], "title": self.titles[i],
                                      "score": s} for i, s in ranked]}).encode()


@dataclass
class Query:
    """One /recommend request resolved: the left-padded history, the items to exclude, k, and
    the user vector when the user is known (computed at start)."""

    padded: np.ndarray
    seen: np.ndarray
    k: int
    vector: torch.Tensor | None = None


class RecommendationService:
    """The run, its catalogue, every user's history, the lock and the batcher; each method is
    one endpoint's work."""

    def __init__(self, run: LoadedRun, catalogue: Catalogue | None = None,
                 padded: np.ndarray | None = None, batch_window_ms: float = 1.0,
                 max_batch: int = MAX_BATCH, folder: Path | None = None,
                 **index_options: Any) -> None:
        self.run = run
        self.model_name = str(run.config.model["name"])
        self.max_seq_len = run.config.data.max_seq_len
        # per-user state, once: the most recent max_seq_len items and every item seen
        sequences = run.prepared.dataset.sequences()
        self.padded = padded if padded is not None else padded_histories(run)
        self.seen = [np.unique(s) for s in sequences]
        # a known user's vector depends only on their history and the frozen model: one batched
        # forward at start instead of one per request (items added later leave it unchanged);
        # computed first, so that tuning a new index samples these instead of running its own
        indexed = (catalogue.index is not None if catalogue is not None
                   else ranks_by_dot_product(run.model))
        self.user_vectors = user_vectors(run, self.padded) if indexed and len(self.padded) \
            else None
        self.catalogue = catalogue or Catalogue.of_run(run, padded=self.padded, folder=folder,
                                                       known=self.user_vectors, **index_options)
        self.lock = ReadWriteLock()
        self.batcher = MicroBatcher(self._rank, batch_window_ms, max_batch)
        self.added_file = folder / ADDED_ITEMS_FILE if folder is not None else None
        self.added: list[dict[str, Any]] = self._readd_saved_items()

    def health(self) -> Health:
        with self.lock.read():
            index = self.catalogue.index
            batcher = self.batcher
            return Health(status="ok", model=self.model_name,
                          num_items=len(self.catalogue.item_ids) - 1,
                          index=index.kind if index is not None else "model-score",
                          index_params=dict(index.params) if index is not None else {},
                          recall_at_10=index.recall_at_10 if index is not None else None,
                          batching={"window_ms": batcher.window * 1000,
                                    "max_batch": batcher.max_batch,
                                    "batches": batcher.batches, "queries": batcher.queries})

    def query(self, request: RecommendRequest) -> Query:
        """The request resolved against the per-user state (no lock: ids only grow)."""
        check_rankable(self.run)
        if request.user_id is not None:
            user = self._user_index(request.user_id)
            vector = self.user_vectors[user] if self.user_vectors is not None else None
            return Query(self.padded[user], self.seen[user], request.k, vector)
        history = np.array([self.catalogue.index_of(raw, f"history[{position}]")
                            for position, raw in enumerate(request.history or [])],
                           dtype=np.int64)
        return Query(left_pad(history, self.max_seq_len), np.unique(history), request.k)

    def _rank(self, queries: Sequence[Query]) -> list[bytes]:
        """One batch: one forward, one search, each answer's JSON (the batcher's thread)."""
        with self.lock.read():
            ranked = rank_batch(self.run, np.stack([q.padded for q in queries]),
                                [q.seen for q in queries], max(q.k for q in queries),
                                self.catalogue.index, self._vectors(queries))
            return [self.catalogue.listed(found[:q.k])
                    for q, found in zip(queries, ranked, strict=True)]

    def _vectors(self, queries: Sequence[Query]) -> torch.Tensor | None:
        """The batch's user vectors: the known users' from start, one forward for the rest."""
        if self.catalogue.index is None:
            return None
        missing = [i for i, q in enumerate(queries) if q.vector is None]
        vectors = [q.vector for q in queries]
        if missing:
            computed = user_vectors(self.run, np.stack([queries[i].padded for i in missing]))
            for i, vector in zip(missing, computed, strict=True):
                vectors[i] = vector
        return torch.stack(vectors)

    def recommend(self, request: RecommendRequest) -> bytes:
        """One request alone, without the batcher (the JSON of its ``ItemList``)."""
        return self._rank([self.query(request)])[0]

    def similar(self, request: SimilarRequest) -> bytes:
        with self.lock.read():
            if self.catalogue.index is None:
                raise ServiceError(400, f"model {self.model_name!r} has no item vectors to "
                                   "compare")
            item = self.catalogue.index_of(request.item_id, "item_id")
            return self.catalogue.listed(self.catalogue.index.similar(item, request.k))

    def add_items(self, request: AddItemsRequest) -> AddedItems:
        with self.lock.write():
            self._add(request.items)
            self.added += [item.model_dump() for item in request.items]
            return AddedItems(added=[item.item_id for item in request.items],
                              num_items=len(self.catalogue.item_ids) - 1,
                              saved=self._save_added())

    def _add(self, items: Sequence[NewItem]) -> None:
        """Encode ``items`` and put them in the catalogue (the caller holds the write lock)."""
        from recadapt.models.content import ContentRecommender, new_item_contents

        new_ids = [item.item_id for item in items]
        for position, raw in enumerate(new_ids):
            if raw in self.catalogue.lookup or raw in new_ids[:position]:
                raise ServiceError(409, f"items[{position}].item_id: {raw!r} is already in "
                                   "the catalogue")
        model, dataset = self.run.model, self.run.prepared.dataset
        rows = [item.fields for item in items]
        contents = (new_item_contents(self.run.config, dataset, model, rows)
                    if isinstance(model, ContentRecommender) else [])
        try:
            vectors = model.add_items(contents)
        except RecAdaptError as err:
            raise ServiceError(400, str(err)) from None
        title = dataset.title_field
        titles = [None if title is None or row.get(title) is None else str(row[title])
                  for row in rows]
        self.catalogue.extend(new_ids, titles, vectors)

    def _save_added(self) -> bool:
        """Every item added so far, to ``items_added.json`` (atomically: all or nothing)."""
        if self.added_file is None:
            return False
        try:
            write_json(self.added_file, {"items": self.added})
            return True
        except OSError as err:  # still served; only a restart would lose them
            log.warning("could not save the added items in %s: %s", self.added_file, err)
            return False

    def _readd_saved_items(self) -> list[dict[str, Any]]:
        """The items an earlier service added (``items_added.json``), added again: encoded by
        the same encoders and tower, so they are served as before the restart."""
        path = self.added_file
        if path is None or not path.is_file():
            return []
        try:
            items = SavedItems.model_validate_json(path.read_bytes()).items
            with self.lock.write():
                self._add(items)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise _saved_items_error(path, f"{where}: {first['msg']}" if where
                                     else first["msg"]) from None
        except (OSError, ServiceError, RecAdaptError) as err:
            raise _saved_items_error(path, str(err)) from None
        log.info("added %d items again from %s", len(items), path)
        return [item.model_dump() for item in items]

    def _user_index(self, raw_user: str) -> int:
        try:
            return self.run.prepared.dataset.user_index(raw_user)
        except RecAdaptError:
            raise ServiceError(404, f"user_id: unknown user id {raw_user!r}") from None


def _saved_items_error(path: Path, problem: str) -> RecAdaptError:
    return RecAdaptError(f"{path}: {problem}; fix it or move it away to start without the "
                         "items added earlier")


def _validation_message(error: RequestValidationError) -> str:
    """FastAPI's list of validation errors as one line: ``field: message; ...``."""
    parts = []
    for item in error.errors():
        if item.get("type") == "json_invalid":  # loc is (body, character offset)
            offset = item.get("loc", ("body", "?"))[-1]
            parts.append(f"request body: malformed JSON at character {offset} "
                         f"({item.get('ctx', {}).get('error', 'decode error')})")
            continue
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def create_app(run: LoadedRun | str | Path, ann_threshold: int | None = DEFAULT_ANN_THRESHOLD,
               recall_target: float = DEFAULT_RECALL_TARGET, index: str = "auto",
               batch_window_ms: float = 1.0, max_batch: int = MAX_BATCH,
               catalogue: Catalogue | None = None, state_dir: str | Path | None = None) -> FastAPI:
    """The app serving ``run`` (a run folder or a loaded run). ``index``: auto | exact | ivf |
    ivfpq | hnsw (auto: exact below ``ann_threshold`` items, else IVF-Flat or IVF-PQ, whichever
    :func:`serve.index.build_index` measures faster, tuned to ``recall_target``).
    ``state_dir`` keeps what the service builds or is given: an approximate index (saved,
    reloaded at the next start) and the items added through ``/items`` (added again at the
    next start); default: the run folder when ``run`` is one, nothing kept for a loaded run.
    ``batch_window_ms``: how long the batcher may wait for concurrent queries (0: every query
    alone). ``catalogue`` replaces the run's own (benchmarks serve synthetic catalogues through the
    same code)."""
    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    folder = Path(state_dir) if state_dir is not None else (
        None if isinstance(run, LoadedRun) else Path(run))
    service = RecommendationService(loaded, catalogue, batch_window_ms=batch_window_ms,
                                    max_batch=max_batch, folder=folder,
                                    ann_threshold=ann_threshold, recall_target=recall_target,
                                    index=index)
    app = FastAPI(title="recadapt", summary=f"Recommendations from a trained "
                  f"{service.model_name!r} run", version="1")
    app.state.service = service
    app.add_middleware(PendingCounter, batcher=service.batcher)

    @app.exception_handler(ServiceError)
    def _refused(_: Request, err: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.exception_handler(RecAdaptError)
    def _user_error(_: Request, err: RecAdaptError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(err)}, status_code=422)

    # Handlers return their JSON as a Response: FastAPI then skips validating the response
    # model again (a second thread-pool hop for sync handlers); the models document the schema.
    @app.get("/health", response_model=Health)
    def health() -> Response:
        """Liveness and what is served."""
        return _json(service.health().model_dump_json().encode())

    @app.post("/recommend", response_model=ItemList,
              responses={404: {"description": "unknown user or item id"}})
    async def recommend(body: RecommendRequest, request: Request) -> Response:
        """Top-K items for a known user or a given history; history items are excluded."""
        query = service.query(body)
        queued(request.scope)
        return _json(await service.batcher.submit(query))

    @app.post("/similar", response_model=ItemList,
              responses={404: {"description": "unknown item id"}})
    def similar(request: SimilarRequest) -> Response:
        """The items whose vectors have the highest cosine with the given item's."""
        return _json(service.similar(request))

    @app.post("/items", response_model=AddedItems,
              responses={400: {"description": "the model has no content tower"},
                         409: {"description": "an item id is already in the catalogue"}})
    def add_items(request: AddItemsRequest) -> Response:
        """Add items by content (content models only): encoded by the run's frozen encoders
        and its trained item tower, recommendable at once without retraining."""
        return _json(service.add_items(request).model_dump_json().encode())

    return app
