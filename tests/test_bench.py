"""The benchmark suite runs end to end and writes the JSON other tools read (slow: it collects and
trains for real; the numbers themselves are never asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from support import REPO, run


@pytest.mark.slow
def test_bench_suite_writes_one_record_per_benchmark(tmp_path: Path):
    out = tmp_path / "bench.json"
    proc = run([sys.executable, "-m", "bench", "--out", out, "--episodes", 2, "--collect-steps", 20, "--steps", 1,
                "--repeats", 3, "--device", "cpu"], cwd=REPO)
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    onnx = ["inference DP3, onnxruntime (cpu)"] if importlib.util.find_spec("onnxruntime") else []
    assert names == ["matmul peak (float32)", "collect: observation pipeline", "collect: end to end",
                     "pretrain afro (cpu)", "pretrain dynamo3d (cpu)", "train DP3 policy (cpu)",
                     "inference DP3 policy (cpu)", *onnx]
    assert all(r["value"] > 0 and r["peak_memory_mb"] > 0 for r in report["results"])
    train = report["results"][5]
    assert train["flops_per_sample"] > 1e8 and 0 < train["fraction_of_matmul_peak"] < 1
    infer = report["results"][6]
    assert infer["p50_ms"] <= infer["p90_ms"] <= infer["p99_ms"]
    assert report["machine"]["device"] == "cpu" and "torch" in report["machine"]["versions"]
    assert "inference DP3 policy (cpu)" in proc.stdout
