"""The quick preset comparison (--quick_gpu): presets read as trainer.py reads them, its report, a smoke run."""

import dataclasses
import json
import subprocess
import sys

import pytest

from benchmarks import presets, report
from benchmarks.config import BenchmarkConfig
from cgan.core.errors import UserError
from conftest import REPO

BENCHMARK = BenchmarkConfig(quick_gpu=True, dataset="isic_skin_cancer/real_64", data_dir="/data/tfds",
                            manual_dir="/data/isic")


def test_a_preset_is_its_flag_file_with_the_benchmarks_dataset():
    p100 = presets.preset_config("p100.flags", BENCHMARK)
    assert (p100.train_steps, p100.batch_size, p100.learning_rate, p100.beta_1) == (100_000, 16, 2e-4, 0.5)
    assert (p100.dataset, p100.data_dir, p100.manual_dir) == ("isic_skin_cancer/real_64", "/data/tfds", "/data/isic")
    assert p100.jit_compile == "auto" and p100.d_conditioning == "concat" and not p100.ema_decay
    quality = presets.preset_config("quality.flags", BENCHMARK, batch_size=64, jit_compile="true")
    assert (quality.batch_size, quality.jit_compile, quality.train_steps) == (64, "true", 5000)
    assert (quality.d_conditioning, quality.d_norm, quality.loss, quality.augment, quality.balanced) == \
        ("projection", "spectral", "hinge", "translation,cutout", True)


def test_a_changed_preset_is_followed(tmp_path):
    path = tmp_path / "mine.flags"
    path.write_text("--flagfile=" + str(presets.preset_path("p100.flags")) + "\n--mode_seeking=0.5\n--batch_size=8\n")
    mine = presets.preset_config(str(path), BENCHMARK)
    assert (mine.mode_seeking, mine.batch_size, mine.train_steps) == (0.5, 8, 100_000)


def test_a_missing_or_foreign_flag_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="^--presets: no flag file .*nothing.flags: name a file such as p100.flags$"):
        presets.preset_config("nothing.flags", BENCHMARK)
    foreign = tmp_path / "foreign.flags"
    foreign.write_text("--learning_rte=0.1\n")
    with pytest.raises(UserError, match=r"^--presets: .*foreign.flags is not a trainer flag file \(.*learning_rte"):
        presets.preset_config(str(foreign), BENCHMARK)


def _results(gpu_visible, p100_rate_on):
    """Made-up --quick_gpu results: p100.flags at batch 16 and 64, XLA on and off."""
    def rates(off, on):
        return {"XLA off": {"steps_per_sec": off}, "XLA on": {"steps_per_sec": on}, "xla_speedup": on / off}
    batches = {"16": rates(50.0, p100_rate_on), "64": rates(20.0, 60.0)}
    p100 = {"resolved_precision": "mixed_bfloat16", "batches": batches,
            "projection": {"steps": 100_000, "batch_size": 16, "measured": True, "jit_compile": "auto",
                           "seconds": {"XLA off": 2000.0, "XLA on": 100_000 / p100_rate_on},
                           "chosen": "XLA on" if gpu_visible else "XLA off",
                           "chosen_seconds": 100_000 / p100_rate_on if gpu_visible else 2000.0}}
    quality = {"resolved_precision": "mixed_bfloat16", "batches": batches,
               "projection": {"steps": 3000, "batch_size": 32, "measured": False}}
    results = {"mode": "quick_gpu", "gpu_visible": gpu_visible,
               "machine": {"device": "NVIDIA H100 (compute capability 9.0)" if gpu_visible else "CPU",
                           "cpu_model": "made-up CPU", "usable_cores": 2, "tensorflow": "2.21.0", "keras": "3.15.1"},
               "settings": {"dataset_full_name": "isic_skin_cancer/synthetic_64/1.0.0", "num_train_images": 2239,
                            "resolution": 64, "repeats": 3, "steps": 200, "warmup_steps": 20},
               "presets": {"p100.flags": p100, "quality.flags": quality},
               "load": {"load_average_start": [1.0, 1.0, 1.0], "load_average_end": [1.0, 1.0, 1.0], "rounds": []},
               "wall_seconds": 185.0}
    results["targets"] = report.evaluate_preset_targets(results)
    return results


def test_on_a_gpu_the_p100_target_is_judged_from_the_chosen_setting():
    met = _results(gpu_visible=True, p100_rate_on=200.0)
    assert met["targets"] == [{"name": "p100.flags 100,000 steps at batch 16 on one GPU, XLA on (seconds)",
                               "value": 500.0, "threshold": 600.0, "met": True}]
    text = report.format_presets_report(met)
    assert "No GPU visible" not in text
    rows = [line.split() for line in text.splitlines() if line.startswith("p100.flags ") and "projection" not in line]
    assert rows == [["p100.flags", "16", "mixed_bfloat16", "50.00", "200.00", "4.00x"],
                    ["p100.flags", "64", "mixed_bfloat16", "20.00", "60.00", "3.00x"]]
    assert "p100.flags projection: 100,000 steps at batch 16: XLA on 500 s (8m20s), XLA off 2,000 s (33m20s); " \
           "--jit_compile=auto picks XLA on here" in text
    assert "quality.flags projection: 3,000 steps at batch 32: not measured at that batch size" in text
    assert "target met: p100.flags 100,000 steps at batch 16 on one GPU, XLA on (seconds): 500 (target ≤ 600" in text
    assert "total wall time 3m05s" in text
    missed = _results(gpu_visible=True, p100_rate_on=100.0)
    assert missed["targets"][0]["value"] == 1000.0 and not missed["targets"][0]["met"]
    assert "target NOT met" in report.format_presets_report(missed)


def test_the_report_sets_private_rates_beside_the_preset_s_own():
    results = _results(gpu_visible=False, p100_rate_on=200.0)
    results["private"] = {"p100.flags": {"refused": "with --dp_epsilon, --d_norm=batch mixes ..."},
                          "quality.flags": {"dp_epsilon": 3.0, "batches": {"16": {
                              "steps_per_sec": 20.0, "without_steps_per_sec": 50.0, "slowdown": 2.5}}}}
    text = report.format_presets_report(results)
    assert "p100.flags with --dp_epsilon: not timed (with --dp_epsilon, --d_norm=batch mixes ...)" in text
    assert "quality.flags with --dp_epsilon=3, batch 16, XLA off: 20.00 steps/s against 50.00 without " \
           "(2.50x slower)" in text


def test_without_a_gpu_the_report_says_so_and_judges_no_target():
    results = _results(gpu_visible=False, p100_rate_on=200.0)
    assert results["targets"] == []
    text = report.format_presets_report(results)
    assert "No GPU visible: these figures are the CPU's; the GPU target is not judged." in text
    assert "target met" not in text and "target NOT met" not in text
    results["presets"]["p100.flags"]["projection"]["seconds"]["XLA off"] = 7500.0
    assert "XLA off 7,500 s (2h05m)" in report.format_presets_report(results)


def test_presets_that_cannot_train_privately_are_refused_and_an_unmeasured_batch_is_not_projected():
    private = dataclasses.replace(BENCHMARK, presets=("p100.flags", "quality.flags"), dp_epsilon=10.0)
    reasons = presets._refusals(private)
    assert "--d_norm=batch" in reasons["p100.flags"] and "pass --diversity=0" in reasons["quality.flags"]
    assert presets._refusals(dataclasses.replace(private, dp_epsilon=None)) == {}
    quality = presets.preset_config("quality.flags", BENCHMARK)
    assert presets._projection(quality, {"8": {}}) == {"steps": 5000, "batch_size": 32, "measured": False}


@pytest.mark.slow
def test_quick_run_writes_every_setting_and_the_private_rate(tmp_path, isic_folders, isic_data_dir):
    preset = tmp_path / "small.flags"
    preset.write_text(f"--flagfile={presets.preset_path('quality.flags')}\n--batch_size=8\n--train_steps=1000\n"
                      f"--diversity=0\n")
    json_path = tmp_path / "quick.json"
    command = [sys.executable, "-m", "benchmarks", "--quick_gpu", f"--presets={preset}",
               "--dataset=isic_skin_cancer/real_64", f"--manual_dir={isic_folders}", f"--data_dir={isic_data_dir}",
               "--batch_sizes=8", "--steps=2", "--warmup_steps=1", "--repeats=1", f"--json={json_path}",
               "--dp_epsilon=10"]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(json_path.read_text())
    assert results["mode"] == "quick_gpu" and results["gpu_visible"] is False and results["targets"] == []
    assert "No GPU visible" in completed.stdout and "No GPU visible" in completed.stderr
    assert list(results["presets"]) == [str(preset)]
    preset_results = results["presets"][str(preset)]
    by_setting = preset_results["batches"]["8"]
    assert by_setting["XLA off"]["steps_per_sec"] > 0 and by_setting["XLA on"]["steps_per_sec"] > 0
    assert by_setting["xla_speedup"] == pytest.approx(
        by_setting["XLA on"]["steps_per_sec"] / by_setting["XLA off"]["steps_per_sec"])
    assert preset_results["resolved_jit_compile"] is False   # auto, without a GPU
    assert preset_results["options"]["d_conditioning"] == "projection"
    projection = preset_results["projection"]
    assert projection["measured"] and projection["chosen"] == "XLA off"
    assert projection["chosen_seconds"] == pytest.approx(1000 / by_setting["XLA off"]["steps_per_sec"])
    assert results["wall_seconds"] > 0 and "total wall time" in completed.stdout
    private = results["private"][str(preset)]["batches"]["8"]
    assert private["steps_per_sec"] > 0 and private["slowdown"] == pytest.approx(
        by_setting["XLA off"]["steps_per_sec"] / private["steps_per_sec"])
    assert f"{preset} with --dp_epsilon=10, batch 8, XLA off: " in completed.stdout
