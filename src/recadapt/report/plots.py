"""Plots of run folders and reports (matplotlib, non-interactive backend).

Every plot is a function returning a ``Figure``; :func:`figure_png` turns one into PNG bytes
(embedded in reports) and :func:`save_png` writes it atomically (run folders).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recadapt.io import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: one series = (epochs, values)
Series = tuple[Sequence[float], Sequence[float]]


def pyplot():
    """pyplot on the Agg backend: no display is needed (servers, CI, headless reports)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps open figures alive)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return buffer.getvalue()


def save_png(fig: Figure, path: Path, dpi: int = 120) -> Path:
    """Write the figure as a PNG atomically (temporary file, then rename) and close it."""
    data = figure_png(fig, dpi)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return path


def gate_figure(table: np.ndarray, names: Sequence[str], title: str = "CROSSAN gates"
                ) -> Figure:
    """One panel per tower: rows = side layers (bottom = first), columns = the tower's own
    backbone state ``H`` then the previous outputs of each tower — the paper's Figure 4.

    ``table``: ``[towers, layers, 1 + towers]`` as from ``CrossModalSideNetworks.gate_table``."""
    plt = pyplot()
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
    return fig


def gate_heatmap(table: np.ndarray, names: Sequence[str], path: Path,
                 title: str = "CROSSAN gates") -> Path:
    """:func:`gate_figure` written to ``path`` as a PNG, atomically."""
    return save_png(gate_figure(table, names, title), path)


def learning_curves(loss: Mapping[str, Series], metric: Mapping[str, Series],
                    metric_name: str, x_label: str = "epoch", log_x: bool = False) -> Figure:
    """Training loss and one validation metric per epoch, every run overlaid (one colour per
    run in both panels, so a run's loss and metric are read together). ``x_label``/``log_x``:
    other x values, e.g. cumulative training minutes on a log scale (benchmarks comparing
    methods whose epochs differ in cost by orders of magnitude)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    colours = _colours(list(dict.fromkeys([*loss, *metric])))
    for label, (epochs, values) in loss.items():
        left.plot(epochs, values, marker=".", color=colours[label], label=label)
    for label, (epochs, values) in metric.items():
        right.plot(epochs, values, marker=".", color=colours[label], label=label)
    left.set(title="training loss", xlabel=x_label, ylabel="loss")
    right.set(title=f"validation {metric_name}", xlabel=x_label, ylabel=metric_name)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if log_x:
            from matplotlib.ticker import FormatStrFormatter, NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def efficiency_bars(labels: Sequence[str], quantities: Mapping[str, Sequence[float | None]]
                    ) -> Figure:
    """One bar panel per quantity (seconds per epoch, peak memory, ...), one bar per run; a
    run without the figure has no bar and is marked "n/a"."""
    plt = pyplot()
    count = max(1, len(quantities))
    panel = max(2.6, 0.5 * len(labels) + 0.8)
    fig, axes = plt.subplots(1, count, figsize=(1 + panel * count, 3.6), squeeze=False)
    colours = _colours(list(labels))
    positions = np.arange(len(labels))
    for ax, (title, values) in zip(axes[0], quantities.items(), strict=False):
        heights = [np.nan if v is None else float(v) for v in values]
        ax.bar(positions, np.nan_to_num(heights), color=[colours[lab] for lab in labels])
        for x, height in zip(positions, heights, strict=True):
            ax.text(x, 0 if np.isnan(height) else height,
                    "n/a" if np.isnan(height) else f"{height:.3g}",
                    ha="center", va="bottom", fontsize=6)
        ax.set_xticks(positions, [_short(lab) for lab in labels], rotation=30, ha="right",
                      fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-0.75, max(len(labels), 2) - 0.25)  # one run: a bar, not a wall
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def expert_usage_bars(names: Sequence[str], mean_weight: Sequence[float],
                      chosen_share: Sequence[float], title: str = "MOMEF expert usage"
                      ) -> Figure:
    """Per modality: its mean fusion weight over all items and the share of items whose
    top-k experts include it (``fusion_weights.json``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.8 + 1.1 * len(names), 3.2))
    positions = np.arange(len(names))
    ax.bar(positions - 0.2, mean_weight, width=0.4, label="mean weight")
    ax.bar(positions + 0.2, chosen_share, width=0.4, label="share of items choosing it")
    ax.set_xticks(positions, list(names), fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def mutual_information_bars(pairs: Mapping[str, float],
                            title: str = "mutual information between towers (nats)") -> Figure:
    """One bar per pair of towers (``mutual_information.json``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2 + 1.0 * len(pairs), 3.2))
    names = list(pairs)
    ax.bar(range(len(names)), [pairs[n] for n in names], color="tab:purple")
    ax.set_xticks(range(len(names)), [n.replace("|", " | ") for n in names], rotation=30,
                  ha="right", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def meta_lora_gate_distribution(gates: np.ndarray, title: str = "RecLoRA gate weights per "
                                "test user") -> Figure:
    """Box plot of each meta-LoRA's weight over users (``gates [users, N_m]``), beside how
    often each is a user's largest weight: spread boxes = a personalizing gate, one box near 1
    = a gate collapsed onto one LoRA."""
    plt = pyplot()
    users, num_meta = gates.shape
    fig, (left, right) = plt.subplots(1, 2, figsize=(3 + 1.2 * num_meta, 3.2))
    labels = [f"LoRA {m + 1}" for m in range(num_meta)]
    left.boxplot([gates[:, m] for m in range(num_meta)])
    left.set_xticks(range(1, num_meta + 1), labels, fontsize=7)
    left.set(title=f"weight over {users} users", ylim=(0, 1))
    top = np.bincount(gates.argmax(1), minlength=num_meta) / max(1, users)
    right.bar(range(num_meta), top, color="tab:orange")
    right.set_xticks(range(num_meta), labels, fontsize=7)
    right.set(title="share of users where it weighs most", ylim=(0, 1))
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.3)
        ax.title.set_fontsize(9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _colours(labels: Sequence[str]) -> dict[str, tuple[float, ...]]:
    cmap = pyplot().get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def _short(label: str, width: int = 18) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1):]
