"""Differentiable augmentation of the discriminator's inputs (DiffAugment: Zhao et al., 2020).

    params = augment.random_params(noise, batch_size)              # [B, NUM_PARAMS] uniform in [0, 1)
    images = augment.diff_augment(images, params, "color,translation,cutout")

    # adaptive strength (cgan.training.ada): each op applies to each image with probability p
    params = augment.random_params(noise, batch_size, adaptive=True)   # [B, NUM_PARAMS + NUM_GATES]
    images = augment.diff_augment(images, params, "color,translation,cutout", strength=p)

The same random transformations are applied to real and generated images before D sees them, in
both the D and the G update, so D cannot overfit the few real images while G still gets gradients
through the transformation (every op here is differentiable with respect to the images). Labels are
untouched: the transformations keep the class of a lesion.

The random parameters come in as a tensor, not from an op inside: the trainer draws them from its
checkpointed noise generator for the global batch and slices them per replica like the noise, so
augmented runs stay exactly resumable.

Adaptive strength (StyleGAN2-ADA's p, Karras et al., 2020): with `adaptive=True` each row also holds
one "gate" per op of POLICIES, a uniform u drawn beside the op's own parameters; the op transforms
that image only when u < p. The gates are drawn whatever p is, so the random stream never depends on
p (which changes during training) and a resumed run draws the same numbers. p = 1 applies every op
(exactly the non-adaptive result), p = 0 none. Without `adaptive`, `random_params` draws what it
always drew, so runs without adaptive strength are unchanged.
"""

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")
NUM_PARAMS = 7          # brightness, saturation, contrast, shift y, shift x, cutout y, cutout x
NUM_GATES = len(POLICIES)   # adaptive strength: one apply-or-skip uniform per op, in POLICIES order
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(policy):
    """"color,cutout" -> ("color", "cutout"); raises ValueError naming unknown parts."""
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}: use a comma-separated subset of "
                         f"{', '.join(POLICIES)}")
    return parts


def random_params(generator, batch_size, adaptive=False):
    """Draws the random parameters of a batch from a tf.random.Generator.

    Args:
        generator: the tf.random.Generator to draw from (its state advances).
        batch_size: rows to draw, one per image.
        adaptive: also draw the NUM_GATES gates that adaptive strength needs.

    Returns:
        [batch_size, NUM_PARAMS] float32 uniform in [0, 1), or [batch_size, NUM_PARAMS + NUM_GATES]
        with `adaptive`: the op parameters in the first NUM_PARAMS columns, the gates after them.
    """
    # Without `adaptive`, one draw of exactly this shape: existing runs depend on these numbers.
    return generator.uniform([batch_size, NUM_PARAMS + (NUM_GATES if adaptive else 0)])


def _color(images, params):
    brightness = params[:, 0, None, None, None] - 0.5                       # [B, 1, 1, 1] in [-0.5, 0.5)
    images = images + brightness
    mean = tf.reduce_mean(images, axis=3, keepdims=True)                     # [B, H, W, 1]
    images = (images - mean) * (params[:, 1, None, None, None] * 2.0) + mean  # saturation x[0, 2)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)             # [B, 1, 1, 1]
    return (images - mean) * (params[:, 2, None, None, None] + 0.5) + mean   # contrast x[0.5, 1.5)


def _translation(images, params):
    height, width = images.shape[1], images.shape[2]
    pad_y, pad_x = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
    # Offsets into the zero-padded image: 0 shifts by +pad, 2·pad by -pad.
    offset_y = tf.cast(tf.floor(params[:, 3] * (2 * pad_y + 1)), tf.int32)  # [B] in [0, 2·pad_y]
    offset_x = tf.cast(tf.floor(params[:, 4] * (2 * pad_x + 1)), tf.int32)
    padded = tf.pad(images, [[0, 0], [pad_y, pad_y], [pad_x, pad_x], [0, 0]])
    rows = offset_y[:, None] + tf.range(height)[None, :]                     # [B, H]
    cols = offset_x[:, None] + tf.range(width)[None, :]                      # [B, W]
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)                  # [B, H, W + 2·pad_x, C]
    return tf.gather(shifted, cols, axis=2, batch_dims=1)                    # [B, H, W, C]


def _cutout(images, params):
    height, width = images.shape[1], images.shape[2]
    half_y, half_x = int(height * CUTOUT_RATIO + 0.5) / 2, int(width * CUTOUT_RATIO + 0.5) / 2
    # Positions in float32 whatever the images' dtype: bfloat16 cannot hold pixel centres such as 40.5.
    centre_y = tf.cast(params[:, 5], tf.float32) * height                     # [B]
    centre_x = tf.cast(params[:, 6], tf.float32) * width
    ys = tf.range(height, dtype=tf.float32)[None, :] + 0.5                   # [1, H]
    xs = tf.range(width, dtype=tf.float32)[None, :] + 0.5
    inside_y = tf.abs(ys - centre_y[:, None]) < half_y                       # [B, H]
    inside_x = tf.abs(xs - centre_x[:, None]) < half_x                       # [B, W]
    hole = tf.logical_and(inside_y[:, :, None], inside_x[:, None, :])        # [B, H, W]
    return images * tf.cast(~hole, images.dtype)[..., None]


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(images, params, policy, strength=None):
    """Applies the policy's transformations in the order color, translation, cutout.

    Args:
        images: [B, H, W, C] float in [-1, 1] (the range may be exceeded after color).
        params: [B, NUM_PARAMS] uniform in [0, 1), one row per image, or [B, NUM_PARAMS + NUM_GATES]
            from `random_params(..., adaptive=True)` (needed with `strength`).
        policy: tuple from parse_policy, or the same comma-separated string.
        strength: None applies every op to every image; otherwise a float scalar p in [0, 1] (Python,
            tensor or tf.Variable): op k transforms image i only where gate params[i, NUM_PARAMS + k] < p.

    Returns:
        [B, H, W, C] images, same dtype.
    """
    parts = parse_policy(policy) if isinstance(policy, str) else policy
    if strength is not None and params.shape[-1] != NUM_PARAMS + NUM_GATES:
        raise ValueError(f"adaptive strength needs {NUM_PARAMS + NUM_GATES} parameters per image "
                         f"(random_params(..., adaptive=True)), got {params.shape[-1]}")
    # Gates are compared in float32: in bfloat16 a gate of 0.999 would round to 1 and never apply at p = 1.
    gates = tf.cast(params[:, NUM_PARAMS:], tf.float32)                     # [B, NUM_GATES] (or [B, 0])
    op_params = tf.cast(params, images.dtype)
    for index, name in enumerate(POLICIES):
        if name in parts:
            transformed = _OPS[name](images, op_params)                       # [B, H, W, C]
            if strength is None:
                images = transformed
            else:
                applies = gates[:, index] < tf.cast(strength, tf.float32)     # [B]
                images = tf.where(applies[:, None, None, None], transformed, images)
    return images
