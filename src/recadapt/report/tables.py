"""Result rows as tables: the aligned text table a benchmark or ``recadapt experiment`` prints,
and the Markdown table of ``docs/benchmark_results.md`` (``benchmarks/tables.py``).

A row is one run's results: ``dataset``, ``method``, ``setting``, the test metrics and the
efficiency figures (``recadapt.experiments``); nested values (validation metrics, learning
curves) are not shown."""

from __future__ import annotations

from typing import Any

#: the identity columns every text table starts with
ROW_IDENTITY = ["dataset", "method", "setting"]
#: Markdown: identity columns, then quality, then efficiency; other scalar keys alphabetically
LEADING = ["dataset", "section", "method", "setting"]
QUALITY = ["HR@10", "NDCG@10", "HR@20", "NDCG@20", "AUC", "LogLoss", "rel_impr",
           "sampled_HR@1", "sampled_HR@3", "sampled_NDCG@3", "sampled_generated_HR@1",
           "HR@1_warm", "HR@1_cold", "recall_at_10", "throughput_rps", "p50_ms", "p99_ms"]
EFFICIENCY = ["epochs", "stopped", "seconds_per_epoch", "seconds_per_step",
              "seconds_per_train_sample", "seconds_per_inference_sample", "total_train_seconds",
              "speedup_vs_fft", "peak_memory_mb", "net_peak_memory_mb", "memory_ratio_vs_fft",
              "trainable_params", "total_params", "cache_bytes"]
#: bookkeeping that would only widen the Markdown tables
SKIPPED = {"config_sha", "crm_run", "same_run_as", "reference", "processes", "environment",
           "data", "config", "quick", "rel_to", "family", "generations"}


def text_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """``dataset``, ``method``, ``setting`` and ``columns`` of every row, aligned with spaces
    (a header line, a rule, one line per row; floats to 4 decimals below 10, else 1)."""
    head = [*ROW_IDENTITY, *columns]
    cells = [[_text_cell(row.get(c)) for c in head] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(head)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, cells)])


def _text_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return "" if value is None else str(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def markdown_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The scalar keys present in any row, in the documented order."""
    present = {k for row in rows for k, v in row.items() if _scalar(v) and k not in SKIPPED}
    ordered = [k for k in LEADING + QUALITY + EFFICIENCY if k in present]
    return ordered + sorted(present - set(ordered))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Every scalar column of ``rows`` (:func:`markdown_columns`) as a Markdown table."""
    head = markdown_columns(rows)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(_markdown_cell(row.get(k)) for k in head) + " |")
    return "\n".join(lines)


def _markdown_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int) and abs(value) >= 10000:
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")
