"""benchmarks/gpu_check.py's --quick path on CPU (tiny BERT/ViT/Llama folders, tiny data), so the
prepared GPU check cannot rot: a row for every measured method, LoRA trains fewer parameters
than FFT, cached and uncached IISAN train the same ones, every registered model trains and
evaluates (no packaged model is touched: the GPU machine has none), rows land where asked."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from recadapt.errors import RecAdaptError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def gpu_check(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_gpu_check",
                                                  REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_gpu_check", module)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("common", None)


def test_quick_run_writes_a_row_for_every_method_and_model(gpu_check, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys) -> None:
    from recadapt.encoders import sources
    from recadapt.models.registry import model_names

    def no_packaged(name: str):
        raise RecAdaptError(f"packaged model {name!r} used: the GPU machine has none")

    monkeypatch.setattr(sources, "_resolve_packaged", no_packaged)
    out = tmp_path / "gpu_check_quick.json"
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--quick", "--threads", "1",
                                      "--results", str(out), "--work-dir", str(tmp_path / "w"),
                                      "--budget", "100000"])  # rows, not time, checked
    gpu_check.main()
    rows = json.loads(out.read_text(encoding="utf-8"))
    measured = {r["method"]: r for r in rows if r["section"] in ("efficiency", "towers")}
    assert set(measured) == {*gpu_check.METHODS, *gpu_check.TOWERS}
    for method, row in measured.items():
        assert row["status"] == "ok", (method, row.get("error"))
        assert row["device"] == "cpu" and row["memory_kind"] == "process_peak_rss"
        assert row["seconds_per_step"] > 0 and row["measured_steps"] == 2
        assert {"dataset", "setting", "peak_memory_mb", "trainable_params"} <= set(row)
    assert measured["lora"]["trainable_params"] < measured["fft"]["trainable_params"]
    assert (measured["iisan-cached"]["trainable_params"]
            == measured["iisan-uncached"]["trainable_params"])
    assert measured["iisan-cached"]["cache_build_seconds"] > 0
    assert measured["iisan-cached"]["cache_bytes"] > 0 == measured["lora"]["cache_bytes"]
    models = {r["method"]: r for r in rows if r["section"] == "models"}
    assert set(models) == set(model_names())
    failed = {name: r["error"] for name, r in models.items() if r["status"] != "pass"}
    assert not failed
    printed = capsys.readouterr().out
    assert "LoRA / IISAN cached" in printed and f"wrote {out}" in printed


def test_a_missing_package_stops_the_check_in_one_line(gpu_check,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(gpu_check.REQUIRED, "recadapt_absent_module", "absent-dist")
    with pytest.raises(SystemExit) as stop:
        gpu_check.check_packages(["efficiency"])
    message = str(stop.value)
    assert "absent-dist" in message and "\n" not in message
    monkeypatch.delitem(gpu_check.REQUIRED, "recadapt_absent_module")
    gpu_check.check_packages(["efficiency"])  # everything else is installed here


def test_the_encoding_device_is_the_cpu_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from recadapt.distributed import compute_device
    from recadapt.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert compute_device("auto") == compute_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        compute_device("cuda")
