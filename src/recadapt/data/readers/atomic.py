"""RecBole atomic files: ``NAME/NAME.inter`` (+ optional ``NAME.item``, ``NAME.user``),
tab-separated with a ``name:type`` header (types in :data:`~.common.RECBOLE_TYPES`)."""

from __future__ import annotations

from recadapt.data.readers.common import (
    Parts,
    ReadRequest,
    feature_table,
    interaction_frame,
    read_delimited,
)
from recadapt.errors import DataError


def read_recbole(request: ReadRequest) -> Parts:
    """RecBole atomic files ``NAME/NAME.inter`` (+ optional ``NAME.item``, ``NAME.user``)."""
    path, cols = request.path, request.cols
    folder, stem = (path, path.name) if path.is_dir() else (path.parent, path.stem)
    inter_path = folder / f"{stem}.inter"
    if not inter_path.is_file():
        found = [p for p in folder.glob("*.inter") if p.name.count(".") == 1]
        if len(found) != 1:
            raise DataError(
                f"{folder}: no RecBole interaction file {stem}.inter; expected the atomic "
                "files NAME/NAME.inter (+ optional NAME.item, NAME.user)"
            )
        inter_path, stem = found[0], found[0].stem
    what = "a RecBole atomic file (tab-separated, header name:type)"
    table = read_delimited(inter_path, "\t", quoted=False, typed=True, what=what)
    inter = interaction_frame(table, cols)

    items, text_fields = None, []
    item_path = folder / f"{stem}.item"
    if item_path.is_file():
        item_table = read_delimited(item_path, "\t", quoted=False, typed=True, what=what)
        item_table.ids(cols["item"], "item")
        numeric = [c for c, t in item_table.types.items() if t == "float"]
        text_fields = [c for c, t in item_table.types.items()
                       if t in ("token", "token_seq") and c != cols["item"]]
        items = feature_table(item_table.frame, cols["item"], numeric)
    users = None
    user_path = folder / f"{stem}.user"
    if user_path.is_file():
        user_table = read_delimited(user_path, "\t", quoted=False, typed=True, what=what)
        user_table.ids(cols["user"], "user")
        numeric = [c for c, t in user_table.types.items() if t == "float"]
        users = feature_table(user_table.frame, cols["user"], numeric)
    return Parts(inter, items, users, text_fields, stem, str(inter_path))
