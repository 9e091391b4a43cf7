import keras
import pytest

from benchmarks import flops
from cgan.model import networks


def test_layer_forward_flops_match_hand_counts():
    dense = keras.layers.Dense(16384, use_bias=False)
    dense(keras.Input((150,)))
    assert flops.layer_forward_flops(dense) == 2 * 150 * 16384

    conv = keras.layers.Conv2D(64, 4, strides=2, padding="same")
    conv(keras.Input((64, 64, 4)))
    # 32×32 outputs, each a 4×4×4 patch times 64 filters.
    assert flops.layer_forward_flops(conv) == 2 * 32 * 32 * (4 * 4 * 4) * 64

    transposed = keras.layers.Conv2DTranspose(128, 4, strides=2, padding="same")
    transposed(keras.Input((8, 8, 256)))
    # Each of the 8×8×256 inputs is spread over a 4×4 patch of 128 channels.
    assert flops.layer_forward_flops(transposed) == 2 * 8 * 8 * 256 * (4 * 4) * 128

    assert flops.layer_forward_flops(keras.layers.LeakyReLU()) == 0


def test_train_step_flops_compose_the_forward_passes():
    generator = networks.build_generator(64, latent_dim=100, num_classes=9)
    discriminator = networks.build_discriminator(64, num_classes=9)
    per_image = flops.train_step_flops(generator, discriminator)
    g, d = per_image["generator_forward"], per_image["discriminator_forward"]
    # The 64×64 baseline networks: Dense 150→8·8·256, three transposed convs; label Dense 50→64·64,
    # three convs, Dense 8·8·256→1.
    assert g == 2 * (150 * 16384 + 8 * 8 * 256 * 16 * 128 + 16 * 16 * 128 * 16 * 64 + 32 * 32 * 64 * 16 * 3)
    assert d == 2 * (50 * 4096 + 32 * 32 * 16 * 4 * 64 + 16 * 16 * 16 * 64 * 128 + 8 * 8 * 16 * 128 * 256
                     + 16384)
    assert per_image["step"] == 3 * g + 8 * d            # one generator forward pass serves both updates
    assert per_image["baseline_step"] == 4 * g + 8 * d   # the baseline's G update draws fresh noise


def test_step_figures_divide_by_each_peak():
    figures = flops.step_figures(10.0, 16, 1e9, {"float32": 1e12, "bfloat16": 4e12})
    assert figures["images_per_sec"] == 160.0
    assert figures["achieved_flops_per_sec"] == pytest.approx(1.6e11)
    assert figures["mfu_vs_float32_peak"] == pytest.approx(0.16)
    assert figures["mfu_vs_bfloat16_peak"] == pytest.approx(0.04)
