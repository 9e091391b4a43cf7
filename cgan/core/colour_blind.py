"""The colour-blind structure map of an image: what the evaluation's diversity figure and the training's
coverage and diversity terms measure, defined once.

    maps = colour_blind.structure_maps(images)     # [N, R, R, 3] float (any affine range) -> [N, 16, 16]
    maps = colour_blind.structure_maps(images, dtype=tf.float64, epsilon=1e-6)   # the evaluation's

A pixel's value is its Mahalanobis distance from the image's mean colour under the image's own colour
covariance, sqrt((x − μ)ᵀ Σ⁻¹ (x − μ)); the map is average-pooled to `size` × `size`. Under any global
affine colour change y = A·x + b (brightness, contrast, tint, white balance, hue rotation, channel
mixing; A invertible) μ and Σ change with it and the quadratic form does not, so a recoloured image has
the map of the image. What moves it is how the image departs from its own background: the outline,
size, position and orientation of a lesion, hairs, texture. Because the map is affine-invariant, the
pixel range does not matter ([0, 1] or the generator's [−1, 1]) except through `epsilon`, which is
added to Σ in the images' own units: it keeps a flat image finite and, in training, bounds the
gradient of a nearly flat generated image.

Differentiable (TensorFlow ops throughout), so the training terms can pull a generated image's map.
"""

import tensorflow as tf

SIZE = 16                 # maps are SIZE × SIZE
_FLOOR = 1e-8             # squared distances below it are clipped: sqrt's gradient at 0 is infinite


def structure_maps(images, size=SIZE, epsilon=1e-6, dtype=tf.float32):
    """[N, R, R, 3] float (R a multiple of size) -> [N, size, size] colour-blind structure maps, in dtype.

    Args:
        images: images in any affine range of pixel values; cast to dtype.
        size: side of the pooled map.
        epsilon: added to each image's colour covariance, in the images' units.
        dtype: the computation's dtype (float64 for the evaluation, float32 for training).

    Raises:
        ValueError: a side that is not a multiple of size.
    """
    images = tf.convert_to_tensor(images)
    side = images.shape[1]
    if side is None or side % size:
        raise ValueError(f"images of {side} pixels cannot be pooled to {size}x{size}")
    pixels = tf.reshape(tf.cast(images, dtype), [-1, side * side, 3])                  # [N, P, 3]
    centred = pixels - tf.reduce_mean(pixels, axis=1, keepdims=True)
    covariance = tf.matmul(centred, centred, transpose_a=True) / (side * side)          # [N, 3, 3]
    covariance += tf.cast(epsilon, dtype) * tf.eye(3, dtype=dtype)
    squared = tf.reduce_sum(tf.matmul(centred, tf.linalg.inv(covariance)) * centred, axis=2)  # [N, P]
    distance = tf.sqrt(tf.maximum(squared, _FLOOR))
    distance = tf.reshape(distance, [-1, side, side, 1])                                # [N, R, R, 1]
    factor = side // size
    pooled = tf.nn.avg_pool2d(distance, factor, factor, "VALID")                        # [N, size, size, 1]
    return pooled[..., 0]
