import json
import subprocess
import sys

import keras
import pytest

from cgan import benchmark


def test_layer_forward_flops_match_hand_counts():
    dense = keras.layers.Dense(16384, use_bias=False)
    dense(keras.Input((150,)))
    assert benchmark.layer_forward_flops(dense) == 2 * 150 * 16384

    conv = keras.layers.Conv2D(64, 4, strides=2, padding="same")
    conv(keras.Input((64, 64, 4)))
    # 32×32 outputs, each a 4×4×4 patch times 64 filters.
    assert benchmark.layer_forward_flops(conv) == 2 * 32 * 32 * (4 * 4 * 4) * 64

    transposed = keras.layers.Conv2DTranspose(128, 4, strides=2, padding="same")
    transposed(keras.Input((8, 8, 256)))
    # Each of the 8×8×256 inputs is spread over a 4×4 patch of 128 channels.
    assert benchmark.layer_forward_flops(transposed) == 2 * 8 * 8 * 256 * (4 * 4) * 128

    assert benchmark.layer_forward_flops(keras.layers.LeakyReLU()) == 0


def test_train_step_flops_compose_the_forward_passes():
    from cgan import networks
    generator = networks.build_generator(64, latent_dim=100, num_classes=9)
    discriminator = networks.build_discriminator(64, num_classes=9)
    flops = benchmark.train_step_flops(generator, discriminator)
    g, d = flops["generator_forward"], flops["discriminator_forward"]
    # The 64×64 seed networks: Dense 150→8·8·256, three transposed convs; label Dense 50→64·64,
    # three convs, Dense 8·8·256→1.
    assert g == 2 * (150 * 16384 + 8 * 8 * 256 * 16 * 128 + 16 * 16 * 128 * 16 * 64 + 32 * 32 * 64 * 16 * 3)
    assert d == 2 * (50 * 4096 + 32 * 32 * 16 * 4 * 64 + 16 * 16 * 16 * 64 * 128 + 8 * 8 * 16 * 128 * 256
                     + 16384)
    assert flops["step"] == 3 * g + 8 * d        # one generator forward pass serves both updates
    assert flops["seed_step"] == 4 * g + 8 * d   # the seed's G update draws fresh noise


def test_rate_without_epoch_starts_drops_the_first_batch_of_each_epoch():
    # Epochs of 3 batches; the call's batches 2..8 take these seconds; batches 4 and 7 start epochs.
    durations = [0.1, 0.1, 5.0, 0.1, 0.1, 7.0, 0.1]
    assert benchmark.rate_without_epoch_starts(durations, 3) == pytest.approx(5 / 0.5)
    assert benchmark.rate_without_epoch_starts([0.2, 0.2], 10) == pytest.approx(5.0)
    assert benchmark.rate_without_epoch_starts([0.5, 0.5], 1) == pytest.approx(2.0)  # all start epochs


@pytest.mark.slow
def test_smoke_run_writes_every_section(tmp_path, isic_folders):
    json_path = tmp_path / "benchmark.json"
    command = [sys.executable, "-m", "cgan.benchmark", "--dataset=isic_skin_cancer/real_64",
               f"--manual_dir={isic_folders}", f"--data_dir={tmp_path / 'tfds'}", "--batch_sizes=8",
               "--steps=2", "--warmup_steps=1", "--repeats=1", "--pipeline_batches=4", "--matmul_size=128",
               "--matmul_count=2", f"--json={json_path}"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "p100.flags projection" not in completed.stdout  # batch 16 was not measured
    results = json.loads(json_path.read_text())

    for section in ("machine", "settings", "auto_precision", "flops", "trainer", "seed_reference", "ratios",
                    "input_pipeline", "matmul_peak", "memory", "load", "targets"):
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
        assert results["ratios"]["8"][policy] == pytest.approx(
            figures["steps_per_sec"] / results["seed_reference"]["8"]["steps_per_sec"])
    assert results["ratios"]["8"]["auto"] == results["ratios"]["8"][results["auto_precision"]]
    seed = results["seed_reference"]["8"]
    assert seed["steps_per_sec"] > 0
    assert seed["steps_per_repeat"] % seed["batches_per_epoch"] == 0  # timed over whole epochs
    assert len(seed["slowest_batch_seconds"]) == 1
    assert seed["steps_per_sec_without_epoch_starts_samples"] == [seed["steps_per_sec_without_epoch_starts"]]
    assert results["ratios"]["8"]["auto_vs_seed_without_epoch_starts"] == pytest.approx(
        results["trainer"]["8"][results["auto_precision"]]["steps_per_sec"]
        / seed["steps_per_sec_without_epoch_starts"])
    assert "without the first batch of each epoch" in completed.stdout
    assert results["input_pipeline"]["8"]["images_per_sec"] > 0
    for dtype in ("float32", "bfloat16"):
        peak = results["matmul_peak"][dtype]
        assert peak["flops_per_sec"] == max(peak["samples"]) > 0  # the best repeat
    assert results["flops"]["per_step"]["8"] == 8 * results["flops"]["per_image"]["step"] > 0
    assert results["memory"]["peak_rss_bytes"] > 0
    assert all(phase["peak_rss_bytes"] > 0 for phase in results["memory"]["phases"].values())
    assert "seed reference" in completed.stdout and "input pipeline alone" in completed.stdout
