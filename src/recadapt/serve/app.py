"""The HTTP API over a trained run: ``create_app(run_dir)`` → a FastAPI app.

* ``GET /health``: status, model, catalogue size, index kind.
* ``POST /recommend``: a known user (their whole history) or a raw history of item ids →
  top-K items by the model's score (inner product), history excluded. An empty history is
  refused (422): no model here has a meaningful answer for "nothing yet" besides popularity,
  which is its own model (serve a popularity run for that).
* ``POST /similar``: an item → the items of highest **cosine** between item vectors.
* ``POST /items``: new items with their content, embedded by a content model's frozen
  encoders and trained item tower, recommendable at once (ID models refuse: 400).

Requests run in FastAPI's thread pool; one readers-writer lock guards the mutable catalogue
(model sources, index, ids): reads run concurrently, ``/items`` waits for them and runs alone.
Errors are ``{"detail": "<one line naming the field>"}``: 404 unknown ids, 409 duplicates,
400 what the model cannot do, 422 malformed requests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from recadapt.errors import RecAdaptError
from recadapt.serve.index import DEFAULT_ANN_THRESHOLD, HNSW_EF_SEARCH, ExactIndex
from recadapt.serve.recommend import item_index, rank
from recadapt.train.runs import LoadedRun, load_run


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


class ScoredItem(BaseModel):
    item_id: str
    title: str | None = Field(description="from the dataset's title column, if any")
    score: float = Field(description="recommend: user · item; similar: cosine")


class ItemList(BaseModel):
    items: list[ScoredItem]


class AddedItems(BaseModel):
    added: list[str] = Field(description="the new items' ids, now recommendable")
    num_items: int = Field(description="catalogue size after adding")


class Health(BaseModel):
    status: str
    model: str
    num_items: int
    index: str = Field(description="exact | faiss-hnsw | model-score (ranked by the model's "
                       "own score, no item vectors)")


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
    def of_run(cls, run: LoadedRun, ann_threshold: int | None,
               ef_search: int = HNSW_EF_SEARCH) -> Catalogue:
        dataset = run.prepared.dataset
        ids = [str(raw) for raw in dataset.item_ids]
        titles = [None, *(dataset.item_title(i) for i in range(1, dataset.num_items + 1))]
        return cls(ids, titles, item_index(run, ann_threshold, ef_search))

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

    def listed(self, ranked: list[tuple[int, float]]) -> ItemList:
        return ItemList(items=[ScoredItem(item_id=self.item_ids[i], title=self.titles[i],
                                          score=s) for i, s in ranked])


class RecommendationService:
    """The run, its catalogue and the lock; each method is one endpoint's work."""

    def __init__(self, run: LoadedRun, catalogue: Catalogue) -> None:
        self.run = run
        self.catalogue = catalogue
        self.lock = ReadWriteLock()
        self.model_name = str(run.config.model["name"])

    def health(self) -> Health:
        with self.lock.read():
            index = self.catalogue.index
            return Health(status="ok", model=self.model_name,
                          num_items=len(self.catalogue.item_ids) - 1,
                          index=index.kind if index is not None else "model-score")

    def recommend(self, request: RecommendRequest) -> ItemList:
        with self.lock.read():
            if request.user_id is not None:
                history = self._user_history(request.user_id)
            else:
                history = np.array([self.catalogue.index_of(raw, f"history[{position}]")
                                    for position, raw in enumerate(request.history or [])],
                                   dtype=np.int64)
            return self.catalogue.listed(rank(self.run, history, request.k,
                                              self.catalogue.index))

    def similar(self, request: SimilarRequest) -> ItemList:
        with self.lock.read():
            if self.catalogue.index is None:
                raise ServiceError(400, f"model {self.model_name!r} has no item vectors to "
                                   "compare")
            item = self.catalogue.index_of(request.item_id, "item_id")
            return self.catalogue.listed(self.catalogue.index.similar(item, request.k))

    def add_items(self, request: AddItemsRequest) -> AddedItems:
        from recadapt.models.content import ContentRecommender, new_item_contents

        with self.lock.write():
            new_ids = [item.item_id for item in request.items]
            for position, raw in enumerate(new_ids):
                if raw in self.catalogue.lookup or raw in new_ids[:position]:
                    raise ServiceError(409, f"items[{position}].item_id: {raw!r} is already in "
                                       "the catalogue")
            model, dataset = self.run.model, self.run.prepared.dataset
            rows = [item.fields for item in request.items]
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
            return AddedItems(added=new_ids, num_items=len(self.catalogue.item_ids) - 1)

    def _user_history(self, raw_user: str) -> np.ndarray:
        dataset = self.run.prepared.dataset
        try:
            user = dataset.user_index(raw_user)
        except RecAdaptError:
            raise ServiceError(404, f"user_id: unknown user id {raw_user!r}") from None
        return dataset.sequences()[user]


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


def create_app(run: LoadedRun | str | Path, ann_threshold: int | None = DEFAULT_ANN_THRESHOLD,
               ef_search: int = HNSW_EF_SEARCH,
               catalogue: Catalogue | None = None) -> FastAPI:
    """The app serving ``run`` (a run folder or a loaded run). ``catalogue`` replaces the
    run's own (benchmarks serve synthetic catalogues through the same code)."""
    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    service = RecommendationService(loaded, catalogue or Catalogue.of_run(
        loaded, ann_threshold, ef_search))
    app = FastAPI(title="recadapt", summary=f"Recommendations from a trained "
                  f"{service.model_name!r} run", version="1")
    app.state.service = service

    @app.exception_handler(ServiceError)
    def _refused(_: Request, err: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.exception_handler(RecAdaptError)
    def _user_error(_: Request, err: RecAdaptError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(err)}, status_code=422)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Liveness and what is served."""
        return service.health()

    @app.post("/recommend", response_model=ItemList,
              responses={404: {"description": "unknown user or item id"}})
    def recommend(request: RecommendRequest) -> ItemList:
        """Top-K items for a known user or a given history; history items are excluded."""
        return service.recommend(request)

    @app.post("/similar", response_model=ItemList,
              responses={404: {"description": "unknown item id"}})
    def similar(request: SimilarRequest) -> ItemList:
        """The items whose vectors have the highest cosine with the given item's."""
        return service.similar(request)

    @app.post("/items", response_model=AddedItems,
              responses={400: {"description": "the model has no content tower"},
                         409: {"description": "an item id is already in the catalogue"}})
    def add_items(request: AddItemsRequest) -> AddedItems:
        """Add items by content (content models only): encoded by the run's frozen encoders
        and its trained item tower, recommendable at once without retraining."""
        return service.add_items(request)

    return app
