"""The figures, targets and text report of a run, from made-up timings (no loop is run)."""

import json
from types import SimpleNamespace

import pytest

from benchmarks import report, run
from benchmarks.config import BenchmarkConfig
from benchmarks.machine import GIB
from cgan.model import networks

AUTO = "mixed_bfloat16"
POLICIES = ("float32", AUTO)
RATES = {  # work units per second: steps, images (pipeline) or FLOPs (matmul)
    ("trainer", 16, "float32"): 8.0, ("trainer", 16, AUTO): 15.0, ("baseline", 16): 6.0,
    ("torch_reference", 16): 10.0, ("trainer", 64, "float32"): 3.0, ("trainer", 64, AUTO): 5.0,
    ("baseline", 64): 2.0, ("torch_reference", 64): 4.0, ("input_pipeline", 16): 9600.0,
    ("input_pipeline", 64): 9600.0, ("matmul", "float32"): 1e11, ("matmul", "bfloat16"): 2e12}


@pytest.fixture(scope="module")
def networks_64():
    return SimpleNamespace(generator=networks.build_generator(64, 100, 9),
                           discriminator=networks.build_discriminator(64, 9))


def _results(networks_64, with_torch):
    config = BenchmarkConfig(repeats=2)
    # Two repeats of 10 s each at the made-up rate, 1.5 cores busy.
    samples = {key: [(rate * 10, 10.0, 15.0)] * 2 for key, rate in RATES.items()
               if with_torch or key[0] != "torch_reference"}
    built = {("trainer", 16, "float32"): SimpleNamespace(trainer=networks_64)}
    for b in (16, 64):
        built[("baseline", b)] = SimpleNamespace(batches_per_epoch=147, slowest_batch_seconds=[1.0, 1.2],
                                                 steps_per_sec_without_epoch_starts=[7.0, 8.0])
    torch_module = SimpleNamespace(runtime_info=lambda: {"version": "2.13.0", "threads": 2, "interop_threads": 2,
                                                         "dtype": "float32", "device": "cpu"})
    figures = run._figures(config, built, samples, POLICIES, AUTO, torch_module if with_torch else None)
    results = {
        "machine": {"cpu_model": "made-up CPU", "usable_cores": 2, "device": "CPU", "tensorflow": "2.21.0",
                    "keras": "3.15.1", "intra_op_threads": 0, "inter_op_threads": 0},
        "settings": {**config.to_dict(), "dataset_full_name": "isic_skin_cancer/synthetic_64/1.0.0",
                     "num_train_images": 2357, "resolution": 64, "precisions": list(POLICIES)},
        "auto_precision": AUTO, **figures,
        "memory": {"peak_rss_bytes": GIB, "per_phase": True, "method": "made up",
                   "phases": {f"trainer batch 64 {AUTO}": {"peak_rss_bytes": GIB, "rss_at_start_bytes": None}}},
        "projection": run._projection(config, figures, POLICIES, AUTO),
        "load": {"load_average_start": [1.0, 1.0, 1.0], "load_average_end": [1.0, 1.0, 1.0], "rounds": []},
    }
    results["targets"] = report.evaluate_targets(results)
    return results


def _targets(results):
    return {t["name"]: (pytest.approx(t["value"]), t["threshold"], t["met"]) for t in results["targets"]}


def test_both_ratios_and_their_targets(networks_64):
    results = _results(networks_64, with_torch=True)
    ratios = results["ratios"]["16"]
    assert ratios["vs_baseline"] == {"float32": pytest.approx(8 / 6), AUTO: 2.5, "auto": 2.5}
    assert ratios["vs_torch"] == {"float32": 0.8, AUTO: 1.5, "auto": 1.5}
    assert ratios["auto_vs_baseline_without_epoch_starts"] == pytest.approx(15 / 7.5)
    assert results["ratios"]["64"]["vs_torch"]["auto"] == 1.25
    assert results["torch_reference"]["batches"]["16"]["steps_per_sec"] == 10.0
    assert results["torch_reference"]["threads"] == 2 and results["torch_reference"]["skipped"] is None
    assert results["projection"]["torch_reference_seconds"] == pytest.approx(10_000)
    assert _targets(results) == {
        "trainer / baseline (Keras fit) steps/s at batch 16, auto precision": (2.5, 2.0, True),
        "trainer / PyTorch eager steps/s at batch 16, auto precision": (1.5, 2.0, False),
        "MFU vs bfloat16 peak at batch 64, auto precision": (
            results["trainer"]["64"][AUTO]["achieved_flops_per_sec"] / 2e12, 0.5, False),
        "input pipeline images/s / auto step images/s (lowest batch size)": (9600 / (64 * 5), 20.0, True),
        f"peak RSS (bytes) while training at batch 64 with {AUTO}": (GIB, 2 * GIB, True),
    }
    json.dumps(results)   # every figure is JSON-ready

    text = report.format_report(results)
    assert "batch 16: trainer mixed_bfloat16 / baseline (Keras fit) 2.50x, / PyTorch eager 1.50x " \
           "(target 2x for both)" in text
    assert "met      trainer / baseline (Keras fit) steps/s at batch 16, auto precision: 2.5 (target 2)" in text
    assert "NOT met  trainer / PyTorch eager steps/s at batch 16, auto precision: 1.5 (target 2)" in text
    torch_row = next(line for line in text.splitlines() if line.startswith("   16  PyTorch eager"))
    assert torch_row.split()[4:8] == ["10.00", "160.0", "1.67x", "1.00x"]
    assert "PyTorch 2.13.0, float32 on the cpu, 2 threads (its default)" in text


def test_without_torch_the_report_says_how_to_install_it(networks_64):
    results = _results(networks_64, with_torch=False)
    assert results["torch_reference"] == {"skipped": run.TORCH_MISSING, "batches": {}}
    assert "vs_torch" not in results["ratios"]["16"] and "torch_reference_seconds" not in results["projection"]
    assert [t["name"] for t in results["targets"]][0] == \
        "trainer / baseline (Keras fit) steps/s at batch 16, auto precision"
    assert not any("PyTorch" in t["name"] for t in results["targets"])
    text = report.format_report(results)
    assert text.count("pip install -r requirements-benchmark.txt") == 1
    assert "PyTorch eager (float32)" not in text
    assert "batch 16: trainer mixed_bfloat16 / baseline (Keras fit) 2.50x (target 2x)" in text
