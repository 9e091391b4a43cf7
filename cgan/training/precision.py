"""Chooses the numeric precision of a run: `--precision=auto|float32|mixed_float16|mixed_bfloat16`.

    policy = precision.resolve("auto")   # e.g. "mixed_bfloat16" on a CPU with AVX512_BF16
    optimizer = precision.wrap_optimizer(keras.optimizers.Adam(2e-4), policy)

`auto` picks the fastest choice that needs no tuning on the device the run will use:
- NVIDIA GPU of compute capability 8.0 or newer (A100, H100, RTX 30xx+): mixed_bfloat16 — tensor-core
  speed with float32's exponent range, so no loss scaling.
- Older NVIDIA GPU (P100 6.0, V100 7.0, T4 7.5): mixed_float16 with dynamic loss scaling.
- CPU with bfloat16 instructions (AVX512_BF16 or AMX): mixed_bfloat16.
- Any other CPU: float32.
Losses and the discriminator's logits stay float32 in every mode (see cgan.model.networks).
"""

import keras
import tensorflow as tf

from cgan.core.config import PRECISIONS



def cpu_supports_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """True when the CPU advertises native bfloat16 arithmetic (Linux only; False elsewhere)."""
    try:
        with open(cpuinfo_path) as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve(precision, gpus=None):
    """Turns a `--precision` value into a Keras dtype policy name.

    Args:
        precision: one of PRECISIONS.
        gpus: physical GPU devices to decide for; None asks TensorFlow.

    Returns:
        "float32", "mixed_float16" or "mixed_bfloat16".
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    gpus = tf.config.list_physical_devices("GPU") if gpus is None else gpus
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
                        for gpu in gpus]
        return "mixed_bfloat16" if min(capabilities) >= (8, 0) else "mixed_float16"
    return "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"


def wrap_optimizer(optimizer, policy):
    """Adds dynamic loss scaling where float16 needs it; other policies keep the optimizer as is."""
    if policy == "mixed_float16":
        return keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def scale_loss(optimizer, loss):
    """The loss to differentiate: scaled for a LossScaleOptimizer, unchanged otherwise."""
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss
