"""``recadapt report``: several run directories side by side in one static file (HTML or
Markdown) — metrics with paired significance, learning curves, efficiency, method analyses,
the dataset card and the configs.

Everything is read from the files the training loop writes (``train/loop.py``); plots come
from ``report/plots.py``; the significance test is ``recadapt compare``'s
(``significance_runs.compare_runs``, the paired t-test of ``eval/significance.py``)."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from recadapt.errors import RecAdaptError
from recadapt.eval.significance import is_significant
from recadapt.io import atomic_write
from recadapt.report import plots
from recadapt.report.dataset_card import dataset_cards
from recadapt.report.document import Block, Code, Details, Document, Heading, Image, Table, Text
from recadapt.report.runs import Run, flatten, read_runs

#: test metrics that per-user ranks reproduce (``ranks.json``), so they can be tested per user
RANKED_METRIC = re.compile(r"(?:sampled_)?((?:HR|NDCG)@\d+)")
FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}
ALPHA = 0.05


def write_report(run_dirs: list[Path], out: Path, fmt: str | None = None,
                 read_data: bool = True, baseline: Path | None = None) -> Path:
    """Build the report of ``run_dirs`` and write it to ``out`` atomically; significance is
    tested against ``baseline`` (one of ``run_dirs``; default: the first)."""
    fmt = report_format(out, fmt)
    if out.is_dir():
        raise RecAdaptError(f"--out {out} is a folder; give a file name such as report.{fmt}")
    runs = read_runs(list(run_dirs))
    if baseline is not None:
        runs = _baseline_first(runs, baseline)
    document = build_document(runs, read_data=read_data)
    if fmt == "md":
        from recadapt.report.markdown import render_markdown

        text = render_markdown(document)
    else:
        from recadapt.report.html import render_html

        text = render_html(document)
    atomic_write(out, lambda tmp: _write_shareable(tmp, text))
    return out


def _write_shareable(path: Path, text: str) -> None:
    """Write ``text`` readable by others as the umask allows (a temporary file is private)."""
    path.write_text(text, encoding="utf-8")
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def _baseline_first(runs: list[Run], baseline: Path) -> list[Run]:
    wanted = baseline.resolve()
    for i, run in enumerate(runs):
        if run.path.resolve() == wanted:
            return [run, *runs[:i], *runs[i + 1:]]
    raise RecAdaptError(f"--baseline {baseline} is not one of the run directories given")


def report_format(out: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in {"html", "md"}:
            raise RecAdaptError(f"--format must be html or md, got {fmt!r}")
        return fmt
    if out.suffix.lower() not in FORMATS:
        raise RecAdaptError(f"--out {out}: end it in .html or .md, or pass --format html|md")
    return FORMATS[out.suffix.lower()]


def build_document(runs: list[Run], read_data: bool = True) -> Document:
    doc = Document(f"recadapt report: {len(runs)} run{'s' if len(runs) != 1 else ''}")
    doc.add(Heading("Runs"), _overview(runs))
    doc.add(Heading("Metrics"), *metrics_section(runs))
    doc.add(Heading("Paired significance"), *significance_section(runs))
    doc.add(Heading("Learning curves"), *learning_curves_section(runs))
    doc.add(Heading("Efficiency"), *efficiency_section(runs))
    analyses = analyses_section(runs)
    if analyses:
        doc.add(Heading("Method analyses"), *analyses)
    doc.add(Heading("Dataset"), *dataset_cards(runs, read_data))
    doc.add(Heading("Configs"), *configs_section(runs))
    return doc


def _overview(runs: list[Run]) -> Table:
    rows = []
    for run in runs:
        model = (run.config.get("model") or {}).get("name", "?")
        status = "finished" if run.finished else "unfinished (no metrics.json)"
        protocol = str(run.metrics.get("protocol", "?")) if run.metrics else "—"
        rows.append([run.label, str(model), status, protocol, str(run.path)])
    return Table(["run", "model", "status", "protocol", "folder"], rows, id="runs")


# ------------------------------------------------------------------------------ metrics
def metrics_section(runs: list[Run]) -> list[Block]:
    finished = [r for r in runs if r.finished]
    if not finished:
        return [Text("No run has finished (no metrics.json): there are no test metrics yet.",
                     note=True)]
    blocks: list[Block] = [Text("Test metrics (the model with the best validation score)."),
                           _metric_table([(r.label, r.test_metrics) for r in finished],
                                         "metrics")]
    if any(r.valid_metrics for r in finished):
        blocks.append(Details("validation metrics", [_metric_table(
            [(r.label, r.valid_metrics) for r in finished], "valid-metrics")]))
    unfinished = [r.label for r in runs if not r.finished]
    if unfinished:
        blocks.append(Text(f"Unfinished (no metrics.json yet): {', '.join(unfinished)}.",
                           note=True))
    return blocks


def _metric_table(rows: list[tuple[str, dict[str, float]]], ident: str) -> Table:
    columns = list(dict.fromkeys(k for _, values in rows for k in values))
    return Table(["run", *columns], [[label, *(_number(values.get(c)) for c in columns)]
                                     for label, values in rows], id=ident)


def significance_section(runs: list[Run]) -> list[Block]:
    """Each ranked run against the first one, per ranked test metric: ``recadapt compare``."""
    from recadapt.eval.significance_runs import compare_runs

    ranked = [r for r in runs if r.finished and r.has_ranks]
    skipped = [r.label for r in runs if r.finished and not r.has_ranks]
    notes: list[Block] = []
    if skipped:
        notes.append(Text(f"No per-user ranks (ranks.json; CTR runs write predictions "
                          f"instead): {', '.join(skipped)} not tested.", note=True))
    if len(ranked) < 2:
        return [Text("Needs two finished runs with per-user ranks (ranks.json).", note=True),
                *notes]
    reference = ranked[0]
    rows = []
    for run in ranked[1:]:
        for metric, reference_value in reference.test_metrics.items():
            match = RANKED_METRIC.fullmatch(metric)
            if not match or metric not in run.test_metrics:
                continue
            try:
                result = compare_runs(run.path, reference.path, match.group(1))
            except RecAdaptError as err:
                notes.append(Text(f"{run.label} vs {reference.label}: not comparable ({err}).",
                                  note=True))
                break
            rows.append([run.label, reference.label, metric, _number(run.test_metrics[metric]),
                         _number(reference_value), _number(result["mean_diff"]),
                         _number(result["t"]), _p_value(result["p_value"]), str(result["n"]),
                         "yes" if is_significant(result["p_value"], ALPHA) else "no"])
    blocks: list[Block] = [Text(
        f"Two-sided paired t-test over the same test users' per-user metric (from ranks.json), "
        f"each run against {reference.label}; significant = p < {ALPHA}.")]
    if rows:
        blocks.append(Table(["run", "vs", "metric", "run", "reference", "mean diff", "t",
                             "p-value", "users", "significant"], rows, id="significance"))
    return blocks + notes


# ---------------------------------------------------------------------- learning curves
def learning_curves_section(runs: list[Run]) -> list[Block]:
    with_history = [r for r in runs if r.history]
    if not with_history:
        return [Text("No run has a history.json (per-epoch loss and validation metrics).",
                     note=True)]
    metric = _curve_metric(with_history)
    loss, values = {}, {}
    for run in with_history:
        epochs = [row.get("epoch", i + 1) for i, row in enumerate(run.history)]
        pairs = [(e, row["loss"]) for e, row in zip(epochs, run.history, strict=True)
                 if isinstance(row.get("loss"), (int, float))]
        if pairs:
            loss[run.label] = ([p[0] for p in pairs], [p[1] for p in pairs])
        pairs = [(e, row["valid"][metric]) for e, row in zip(epochs, run.history, strict=True)
                 if isinstance(row.get("valid"), dict) and metric in row["valid"]]
        if pairs:
            values[run.label] = ([p[0] for p in pairs], [p[1] for p in pairs])
    blocks: list[Block] = [Image(plots.figure_png(plots.learning_curves(loss, values, metric)),
                                 f"training loss and validation {metric} per epoch")]
    missing = [r.label for r in with_history if r.label not in values]
    if missing:
        blocks.append(Text(f"No validation {metric} per epoch in: {', '.join(missing)}.",
                           note=True))
    absent = [r.label for r in runs if not r.history]
    if absent:
        blocks.append(Text(f"No history.json: {', '.join(absent)}.", note=True))
    return blocks


def _curve_metric(runs: list[Run]) -> str:
    """The monitored metric most runs share (``train.monitor``), else the first recorded."""
    monitors = Counter(str((r.config.get("train") or {}).get("monitor")) for r in runs)
    recorded = {k for r in runs for row in r.history
                if isinstance(row.get("valid"), dict) for k in row["valid"]}
    for monitor, _ in monitors.most_common():
        if monitor in recorded:
            return monitor
    ordered = [k for r in runs for row in r.history[:1]
               if isinstance(row.get("valid"), dict) for k in row["valid"]]
    return ordered[0] if ordered else "metric"


# --------------------------------------------------------------------------- efficiency
#: (efficiency.json key, column title, scale)
EFFICIENCY_COLUMNS = (("seconds_per_epoch", "seconds / epoch", 1.0),
                      ("peak_memory_mb", "peak memory (MiB)", 1.0),
                      ("trainable_params", "trainable parameters", 1.0),
                      ("total_params", "total parameters", 1.0),
                      ("cache_bytes", "cache (MiB)", 2.0 ** -20))


def efficiency_section(runs: list[Run]) -> list[Block]:
    measured = [r for r in runs if r.efficiency]
    if not measured:
        return [Text("No run has an efficiency.json.", note=True)]
    present = [c for c in EFFICIENCY_COLUMNS if any(c[0] in r.efficiency for r in measured)]
    rows = []
    for run in measured:
        eff = run.efficiency or {}
        rows.append([run.label, *(_number(_scaled(eff.get(key), scale), digits=3)
                                  for key, _, scale in present),
                     str(eff.get("epochs", "—")), str(eff.get("stopped", "—"))])
    bars = {title: [_scaled((r.efficiency or {}).get(key), scale) for r in measured]
            for key, title, scale in present if key != "total_params"}
    figure = plots.efficiency_bars([r.label for r in measured], bars)
    return [Table(["run", *(title for _, title, _ in present), "epochs", "stopped"], rows,
                  id="efficiency"),
            Image(plots.figure_png(figure), "efficiency per run")]


def _scaled(value: Any, scale: float) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) * scale
    return None


# ----------------------------------------------------------------------------- analyses
def analyses_section(runs: list[Run]) -> list[Block]:
    blocks: list[Block] = []
    for run in runs:
        if not run.analyses:
            continue
        blocks.append(Heading(run.label, 3))
        for name, value in run.analyses.items():
            try:
                blocks.extend(_analysis(run.label, name, value))
            except (KeyError, TypeError, ValueError, IndexError) as err:
                raise RecAdaptError(f"{run.path / name}: unexpected layout "
                                    f"({type(err).__name__}: {err})") from None
    return blocks


def _analysis(label: str, name: str, value: Any) -> list[Block]:
    if name == "gates.json" and value.get("kind") == "reclora_meta_lora_gates":
        gates = np.asarray(value["gates"], dtype=float).reshape(len(value["users"]), -1)
        figure = plots.meta_lora_gate_distribution(gates, f"{label}: RecLoRA meta-LoRA gates")
        table = Table(["", *(f"LoRA {m + 1}" for m in range(gates.shape[1]))], [
            ["mean weight", *(_number(v) for v in value["mean"])],
            ["share weighing most", *(_number(v) for v in value["argmax_share"])]])
        return [Text(f"RecLoRA gate weights over the meta-LoRAs, {len(gates)} test users "
                     "(gates.json)."), Image(plots.figure_png(figure), "RecLoRA gates"), table]
    if name == "gates.json":
        table = np.asarray(value["values"], dtype=float)
        if table.ndim != 3:
            raise ValueError(f"'values' must be [towers, layers, columns], got {table.shape}")
        figure = plots.gate_figure(table, value["towers"], f"{label}: CROSSAN gates")
        return [Text("CROSSAN cross-modal gates per side layer (gates.json)."),
                Image(plots.figure_png(figure), "CROSSAN gate heatmap")]
    if name == "fusion_weights.json":
        names = list(value["mean_weight"])
        figure = plots.expert_usage_bars(
            names, [value["mean_weight"][n] for n in names],
            [value["chosen_share"][n] for n in names],
            f"{label}: {value.get('mode', 'fusion')} expert usage (top {value.get('top_k')})")
        return [Text("Fusion weights per modality over all items (fusion_weights.json)."),
                Image(plots.figure_png(figure), "expert usage")]
    if name == "mutual_information.json":
        pairs = {str(k): float(v) for k, v in value["pairs"].items()}
        figure = plots.mutual_information_bars(pairs)
        return [Text(f"Mutual information between tower outputs over {value.get('items', '?')} "
                     f"items, {value.get('estimator', '')} (mutual_information.json); mean "
                     f"{_number(value.get('mean'))}."),
                Image(plots.figure_png(figure), "mutual information"),
                Table(["towers", "nats"], [[k.replace("|", " / "), _number(v)]
                                           for k, v in pairs.items()])]
    if name == "generations.json":
        rows = value if isinstance(value, list) else [value]
        columns = list(dict.fromkeys(k for row in rows for k in row))
        return [Text(f"Sample generations ({len(rows)}, generations.json)."),
                Table(columns, [[_cell(row.get(c)) for c in columns] for row in rows],
                      id="generations")]
    return []


# ------------------------------------------------------------------------------ configs
def configs_section(runs: list[Run]) -> list[Block]:
    flat = [flatten(r.config) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    missing = object()
    differing = [k for k in keys
                 if len({json.dumps(f.get(k, missing), sort_keys=True, default=repr)
                         for f in flat}) > 1]
    blocks: list[Block] = []
    if len(runs) < 2:
        blocks.append(Text("One run: nothing to compare.", note=True))
    elif differing:
        blocks += [Text(f"{len(differing)} of {len(keys)} resolved config keys differ "
                        "(— = the run's config has no such key)."),
                   Table(["key", *(r.label for r in runs)],
                         [[k, *(_config_value(f[k]) if k in f else "—" for f in flat)]
                          for k in differing], id="config-diff")]
    else:
        blocks.append(Text("The resolved configs are identical."))
    blocks.append(Details("full configs (config.yaml)", [
        block for run in runs for block in (Heading(run.label, 3), Code(run.config_text))]))
    return blocks


# ------------------------------------------------------------------------------ helpers
def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 1e6):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}f}"


def _config_value(value: Any) -> str:
    return "null" if value is None else _cell(value)


def _p_value(p: float) -> str:
    return f"{p:.2e}" if 0 < p < 1e-4 else f"{p:.4f}"


def _cell(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "; ".join(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return "—" if value is None else str(value)
