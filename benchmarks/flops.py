"""FLOPs of a training step, counted from the layer shapes, and the utilisation they imply.

    from benchmarks import flops
    per_image = flops.train_step_flops(generator, discriminator)   # dict, FLOPs for one example
    figures = flops.step_figures(steps_per_sec, batch_size, per_image["step"],
                                 {"float32": peak_f32, "bfloat16": peak_bf16})  # FLOP/s peaks
    figures["mfu_vs_bfloat16_peak"]                                 # achieved FLOP/s / the peak
"""

import keras
import numpy as np

METHOD = ("analytic: 2 FLOPs per multiply-add of Dense/Conv2D/Conv2DTranspose, backward = 2x forward "
          "except D's weights in the G step; the baseline's step has one more generator forward pass "
          "(benchmarks.flops.train_step_flops)")


def layer_forward_flops(layer):
    """FLOPs of one layer's forward pass for one example: 2 per multiply-add of its matmul or conv.

    Dense: 2·in·out (per position, for inputs with more than one axis). Conv2D: 2·H_out·W_out·k_h·k_w·
    C_in·C_out. Conv2DTranspose: 2·H_in·W_in·k_h·k_w·C_in·C_out (each input pixel is spread over a
    k_h×k_w patch). Every other layer (embeddings, batch norm, activations, reshapes) counts 0: for
    the baseline networks their elementwise work is a small share of the total, and not what a matmul
    peak measures.

    Args:
        layer: a built keras layer.

    Returns:
        int, FLOPs per example.
    """
    if isinstance(layer, keras.layers.Conv2DTranspose):
        _, height, width, channels_in = layer.input.shape
        kernel_h, kernel_w = layer.kernel_size
        return 2 * height * width * kernel_h * kernel_w * channels_in * layer.filters
    if isinstance(layer, keras.layers.Conv2D):
        _, height, width, channels_out = layer.output.shape
        kernel_h, kernel_w = layer.kernel_size
        channels_in = layer.input.shape[-1]
        return 2 * height * width * kernel_h * kernel_w * channels_in * channels_out
    if isinstance(layer, keras.layers.Dense):
        positions = int(np.prod(layer.input.shape[1:-1], dtype=np.int64))
        return 2 * positions * layer.input.shape[-1] * layer.units
    return 0


def forward_flops(model):
    """FLOPs of one forward pass of a functional keras.Model for one example.

    Args:
        model: a built functional keras.Model.

    Returns:
        int, the sum of layer_forward_flops over its layers.
    """
    return sum(layer_forward_flops(layer) for layer in model.layers)


def train_step_flops(generator, discriminator):
    """FLOPs of one training step for one example, by phase, for the trainer and for the baseline.

    A backward pass through a matmul or conv costs its forward FLOPs once for the input gradient and
    once for the weight gradient. With F_G, F_D the forward FLOPs:
        D step = G fwd + D fwd real + D fwd fake + D bwd on both (weights and inputs) = F_G + 6·F_D
        G step = D fwd + D bwd (inputs only: D is not updated) + G bwd = 2·F_G + 2·F_D
    The trainer's G step (and the PyTorch reference's) reuses the D step's generated batch, so it runs
    no generator forward pass; the baseline's G step draws fresh noise and runs one more (+F_G:
    `baseline_step`). TensorFlow computes a layer's input gradient whole even where only part of it is
    needed (D's first conv, G's first Dense); the one input gradient counted but never computed, that
    of D's label-plane Dense in the G step, is a negligible share of the total.

    Args:
        generator, discriminator: the functional keras.Models of cgan.model.networks.

    Returns:
        dict of FLOPs per example: generator_forward, discriminator_forward, d_step, g_step, step
        (the trainer's), baseline_step (the baseline's).
    """
    g, d = forward_flops(generator), forward_flops(discriminator)
    d_step = g + 2 * d + 2 * (2 * d)
    g_step = d + d + 2 * g
    return {"generator_forward": g, "discriminator_forward": d, "d_step": d_step, "g_step": g_step,
            "step": d_step + g_step, "baseline_step": d_step + g_step + g}


def step_figures(steps_per_sec, batch_size, flops_per_image, peaks):
    """Rates and model FLOP utilisation of a training loop.

    Args:
        steps_per_sec: the loop's measured rate.
        batch_size: images per step.
        flops_per_image: FLOPs of one step for one example (train_step_flops).
        peaks: {"float32": FLOP/s, "bfloat16": FLOP/s}, the matmul peaks.

    Returns:
        dict: steps_per_sec, images_per_sec, achieved_flops_per_sec, mfu_vs_float32_peak,
        mfu_vs_bfloat16_peak.
    """
    achieved = flops_per_image * batch_size * steps_per_sec
    return {"steps_per_sec": steps_per_sec, "images_per_sec": steps_per_sec * batch_size,
            "achieved_flops_per_sec": achieved,
            "mfu_vs_float32_peak": achieved / peaks["float32"],
            "mfu_vs_bfloat16_peak": achieved / peaks["bfloat16"]}
