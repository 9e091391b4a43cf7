import importlib.util
import json
import subprocess
import sys

import pytest

from benchmarks import run


def test_without_torch_the_pytorch_loop_is_skipped_with_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)   # `import torch` now fails as if it were absent
    lines = []
    assert run.import_torch_reference(lines.append) is None
    assert lines == [run.TORCH_MISSING]
    assert "pip install -r requirements-benchmark.txt" in run.TORCH_MISSING


@pytest.mark.slow
def test_smoke_run_writes_every_section(tmp_path, isic_folders):
    # Through the documented `python -m cgan.benchmark`, which forwards to `python -m benchmarks`.
    json_path = tmp_path / "benchmark.json"
    command = [sys.executable, "-m", "cgan.benchmark", "--dataset=isic_skin_cancer/real_64",
               f"--manual_dir={isic_folders}", f"--data_dir={tmp_path / 'tfds'}", "--batch_sizes=8",
               "--steps=2", "--warmup_steps=1", "--repeats=1", "--pipeline_batches=4", "--matmul_size=128",
               "--matmul_count=2", f"--json={json_path}"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "p100.flags projection" not in completed.stdout  # batch 16 was not measured
    results = json.loads(json_path.read_text())

    for section in ("machine", "settings", "auto_precision", "flops", "trainer", "baseline", "torch_reference",
                    "ratios", "input_pipeline", "matmul_peak", "memory", "load", "targets"):
        assert section in results, section
    assert results["machine"]["cpu_count"] > 0 and results["machine"]["tensorflow"]
    policies = results["settings"]["precisions"]
    assert "float32" in policies
    for policy in policies:
        figures = results["trainer"]["8"][policy]
        for key in ("steps_per_sec", "images_per_sec", "achieved_flops_per_sec", "mfu_vs_float32_peak",
                    "mfu_vs_bfloat16_peak"):
            assert figures[key] > 0, (policy, key)
        assert figures["images_per_sec"] == pytest.approx(8 * figures["steps_per_sec"])
        assert results["ratios"]["8"]["vs_baseline"][policy] == pytest.approx(
            figures["steps_per_sec"] / results["baseline"]["8"]["steps_per_sec"])
    auto = results["auto_precision"]
    assert results["ratios"]["8"]["vs_baseline"]["auto"] == results["ratios"]["8"]["vs_baseline"][auto]
    baseline = results["baseline"]["8"]
    assert baseline["steps_per_sec"] > 0
    assert baseline["steps_per_repeat"] % baseline["batches_per_epoch"] == 0  # timed over whole epochs
    assert len(baseline["slowest_batch_seconds"]) == 1
    assert baseline["steps_per_sec_without_epoch_starts_samples"] == [baseline["steps_per_sec_without_epoch_starts"]]
    assert results["ratios"]["8"]["auto_vs_baseline_without_epoch_starts"] == pytest.approx(
        results["trainer"]["8"][auto]["steps_per_sec"] / baseline["steps_per_sec_without_epoch_starts"])
    assert "without the first batch of each epoch" in completed.stdout

    torch_section = results["torch_reference"]
    if importlib.util.find_spec("torch") is not None:
        assert torch_section["skipped"] is None and torch_section["threads"] >= 1
        assert torch_section["batches"]["8"]["steps_per_sec"] > 0
        assert results["ratios"]["8"]["vs_torch"]["auto"] == pytest.approx(
            results["trainer"]["8"][auto]["steps_per_sec"] / torch_section["batches"]["8"]["steps_per_sec"])
        assert "PyTorch eager (float32)" in completed.stdout
    else:
        assert torch_section == {"skipped": run.TORCH_MISSING, "batches": {}}
        assert completed.stdout.count(run.TORCH_MISSING) == 1

    assert results["input_pipeline"]["8"]["images_per_sec"] > 0
    for dtype in ("float32", "bfloat16"):
        peak = results["matmul_peak"][dtype]
        assert peak["flops_per_sec"] == max(peak["samples"]) > 0  # the best repeat
    assert results["flops"]["per_step"]["8"] == 8 * results["flops"]["per_image"]["step"] > 0
    assert results["memory"]["peak_rss_bytes"] > 0
    assert all(phase["peak_rss_bytes"] > 0 for phase in results["memory"]["phases"].values())
    assert "baseline (Keras fit, float32)" in completed.stdout and "input pipeline alone" in completed.stdout
    assert "seed" not in completed.stdout.lower()
