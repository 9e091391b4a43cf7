"""Differentiable augmentation of the discriminator's inputs (DiffAugment: Zhao et al., 2020).

    params = augment.random_params(noise, batch_size)              # [B, NUM_PARAMS] uniform in [0, 1)
    images = augment.diff_augment(images, params, "color,translation,cutout")

The same random transformations are applied to real and generated images before D sees them, in
both the D and the G update, so D cannot overfit the few real images while G still gets gradients
through the transformation (every op here is differentiable with respect to the images). Labels are
untouched: the transformations keep the class of a lesion.

The random parameters come in as a tensor, not from an op inside: the trainer draws them from its
checkpointed noise generator for the global batch and slices them per replica like the noise, so
augmented runs stay exactly resumable.
"""

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")
NUM_PARAMS = 7          # brightness, saturation, contrast, shift y, shift x, cutout y, cutout x
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


def random_params(generator, batch_size):
    """[batch_size, NUM_PARAMS] float32 uniform in [0, 1) from a tf.random.Generator."""
    return generator.uniform([batch_size, NUM_PARAMS])


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
    centre_y = params[:, 5] * height                                          # [B]
    centre_x = params[:, 6] * width
    ys = tf.range(height, dtype=tf.float32)[None, :] + 0.5                   # [1, H]
    xs = tf.range(width, dtype=tf.float32)[None, :] + 0.5
    inside_y = tf.abs(ys - centre_y[:, None]) < half_y                       # [B, H]
    inside_x = tf.abs(xs - centre_x[:, None]) < half_x                       # [B, W]
    hole = tf.logical_and(inside_y[:, :, None], inside_x[:, None, :])        # [B, H, W]
    return images * tf.cast(~hole, images.dtype)[..., None]


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(images, params, policy):
    """Applies the policy's transformations in the order color, translation, cutout.

    Args:
        images: [B, H, W, C] float in [-1, 1] (the range may be exceeded after color).
        params: [B, NUM_PARAMS] uniform in [0, 1), one row per image.
        policy: tuple from parse_policy, or the same comma-separated string.

    Returns:
        [B, H, W, C] images, same dtype.
    """
    parts = parse_policy(policy) if isinstance(policy, str) else policy
    params = tf.cast(params, images.dtype)
    for name in POLICIES:
        if name in parts:
            images = _OPS[name](images, params)
    return images
