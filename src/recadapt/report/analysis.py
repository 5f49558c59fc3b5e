"""Analyses of a trained multi-tower model, written into its run folder after training.

* ``gates.json`` / ``gates.png`` — learned cross-modal gate values (CROSSAN Figure 4);
* ``mutual_information.json`` — KSG mutual information between every pair of towers' outputs
  over all items (CROSSAN section 3, Table 1; estimator in
  :mod:`recadapt.eval.mutual_information`);
* ``fusion_weights.json`` — for gated fusions, the mean weight per modality over all items and
  how often each is among the top k (MOMEF).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from recadapt.eval.mutual_information import ksg_mutual_information
from recadapt.io import write_json
from recadapt.models.crossan import MultiTowerRecommender
from recadapt.report.plots import gate_heatmap

if TYPE_CHECKING:
    from recadapt.data.ctr import CTRSplit
    from recadapt.data.splits import NextItemSplit
    from recadapt.models.base import Recommender


def write_run_analysis(model: Recommender, run_dir: Path, split: NextItemSplit | CTRSplit
                       ) -> None:
    """Every analysis of a trained model, written into its run folder when training ends: the
    multi-tower analyses below, then the model's own (``Recommender.write_analysis``, which
    receives the run's data split)."""
    if isinstance(model, MultiTowerRecommender):
        write_tower_analysis(model, run_dir)
    model.write_analysis(run_dir, split)


@torch.no_grad()
def all_tower_outputs(model: MultiTowerRecommender, batch_size: int = 1024
                      ) -> list[torch.Tensor]:
    """Every item's per-modality tower output (eval mode), ``[num_items, width]`` each."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks: list[list[torch.Tensor]] = []
    for begin in range(1, model.num_items + 1, batch_size):
        ids = torch.arange(begin, min(begin + batch_size, model.num_items + 1), device=device)
        chunks.append([out.float().cpu() for out in model.tower_outputs(ids)])
    model.train(was_training)
    return [torch.cat(parts) for parts in zip(*chunks, strict=True)] if chunks else []


def write_tower_analysis(model: MultiTowerRecommender, run_dir: Path) -> dict[str, Any]:
    names = model.names()
    out: dict[str, Any] = {}
    if hasattr(model, "gate_table"):
        table = model.gate_table().numpy()
        write_json(run_dir / "gates.json", {
            "towers": names, "columns": ["H", *names],
            "note": "per tower: rows = side layers 1..n, columns = weight of the tower's own "
                    "backbone state (H) and of each tower's previous output; rows sum to 1",
            "values": table.round(6).tolist()})
        gate_heatmap(table, names, run_dir / "gates.png")
        out["gates"] = table.tolist()
    outputs = all_tower_outputs(model)
    if len(outputs) >= 2:
        pairs = {f"{names[a]}|{names[b]}": ksg_mutual_information(outputs[a].numpy(),
                                                                  outputs[b].numpy())
                 for a, b in combinations(range(len(outputs)), 2)}
        mi = {"estimator": "KSG k=3 on 8 principal components per side (nats)",
              "items": int(outputs[0].shape[0]), "pairs": pairs,
              "mean": float(sum(pairs.values()) / len(pairs))}
        write_json(run_dir / "mutual_information.json", mi)
        out["mutual_information"] = mi
    fusion = getattr(model, "fusion", None)
    if outputs and fusion is not None and getattr(fusion, "mode", "concat") != "concat":
        with torch.no_grad():
            weights = fusion.weights([o.to(next(model.parameters()).device)
                                      for o in outputs]).float().cpu()
        usage = {"mode": fusion.mode, "top_k": fusion.top_k,
                 "router": fusion.router,
                 "mean_weight": dict(zip(names, weights.mean(0).tolist(), strict=True)),
                 "chosen_share": dict(zip(names, (weights > 0).float().mean(0).tolist(),
                                          strict=True))}
        write_json(run_dir / "fusion_weights.json", usage)
        out["fusion"] = usage
    return out
