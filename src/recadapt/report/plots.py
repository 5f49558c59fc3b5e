"""Plots written as PNG files into run folders (matplotlib, non-interactive backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def gate_heatmap(table: np.ndarray, names: Sequence[str], path: Path,
                 title: str = "CROSSAN gates") -> Path:
    """One panel per tower: rows = side layers (bottom = first), columns = the tower's own
    backbone state ``H`` then the previous outputs of each tower — the paper's Figure 4.

    ``table``: ``[towers, layers, 1 + towers]`` as from ``CrossModalSideNetworks.gate_table``.
    Written atomically (temporary file, then rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    towers, layers, columns = table.shape
    labels = ["H", *[n[:6] for n in names]]
    fig, axes = plt.subplots(1, towers, figsize=(2.2 + 1.9 * towers, 0.6 + 0.45 * layers + 1),
                             squeeze=False)
    # the colour scale spans the table's own range (gates often stay near an even mix, and an
    # absolute 0..1 scale would hide their differences); the printed values are absolute
    low, high = float(table.min()), float(table.max())
    high = max(high, low + 1e-6)
    for t, ax in enumerate(axes[0]):
        ax.imshow(table[t], cmap="Blues", vmin=low, vmax=high, origin="lower", aspect="auto")
        for (row, col), value in np.ndenumerate(table[t]):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value > low + 0.6 * (high - low) else "black")
        ax.set_xticks(range(columns), labels[:columns], fontsize=8)
        ax.set_yticks(range(layers), [str(i + 1) for i in range(layers)], fontsize=8)
        ax.set_title(names[t], fontsize=9)
        if t == 0:
            ax.set_ylabel("side layer")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
