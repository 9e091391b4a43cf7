"""The spaces where the coverage and diversity terms measure how far apart two images are.

    space = feature_spaces.FeatureSpace("structure")                       # or ("discriminator", discriminator)
    features = space(images, labels)      # images [B, R, R, 3] in [-1, 1], labels [B] -> [B, F] float32
    feature_spaces.distances(a, b)        # [B] RMS distance between matching rows of two [B, F]

Both spaces are meant to give a global change of colour or brightness little or no weight, so that a
generator cannot satisfy a term by recolouring one picture:
- "structure": the colour-blind structure map (cgan.core.colour_blind), 16×16 = 256 values; exactly
  unchanged by any global affine colour change, and fixed (no weights).
- "discriminator": D's block output at 16×16 (networks.discriminator_features, computed in inference
  mode so that spectral norm's power iteration does not advance), each channel of each image normalised
  over positions to mean 0 and variance 1, then average-pooled to 8×8. The normalisation makes the
  space scale-free (D's feature scale drifts as it trains) and removes per-channel offsets and gains,
  which is what a global colour change mostly becomes in early convolutional features; it is learned
  and moves with D, so it sees what D finds telling, beyond one fixed descriptor.

Distances are RMS over the F values (per value, so the two spaces' distances are on comparable scales).
"""

import tensorflow as tf

from cgan.core import colour_blind
from cgan.core.config import FEATURE_SPACES
from cgan.model import networks

STRUCTURE_EPSILON = 1e-5    # added to each image's colour covariance (pixels in [-1, 1]): below a grey level; bounds the
                            # gradient of a nearly flat generated image
_POOLED_SIDE = 8            # the discriminator space's features are pooled to 8×8
_RELATIVE_EPSILON = 1e-3    # × the image's mean channel variance: a dead channel stays finite, scale-free


class FeatureSpace:
    """One of FEATURE_SPACES as a function of (images, labels) -> [B, F] float32."""

    def __init__(self, name, discriminator=None):
        """
        Args:
            name: one of FEATURE_SPACES.
            discriminator: D, for "discriminator" (its block at networks.FEATURE_SIDE is read).

        Raises:
            ValueError: an unknown name, or "discriminator" without one.
        """
        if name not in FEATURE_SPACES:
            raise ValueError(f"unknown feature space {name!r}: choose one of {', '.join(FEATURE_SPACES)}")
        if name == "discriminator" and discriminator is None:
            raise ValueError("the discriminator space needs the discriminator")
        self.name = name
        self._features = networks.discriminator_features(discriminator) if name == "discriminator" else None

    def __call__(self, images, labels):
        """images [B, R, R, 3] float in [-1, 1], labels [B] int32 -> [B, F] float32."""
        if self._features is None:
            maps = colour_blind.structure_maps(images, epsilon=STRUCTURE_EPSILON)       # [B, 16, 16]
            return tf.reshape(maps, [tf.shape(maps)[0], -1])                              # [B, 256]
        features = tf.cast(self._features([images, labels], training=False), tf.float32)  # [B, 16, 16, C]
        return normalised_features(features)


def normalised_features(features):
    """[B, s, s, C] -> [B, 8·8·C]: each channel of each image to mean 0 and variance 1 over positions,
    then average-pooled to 8×8 (see the module docstring)."""
    mean, variance = tf.nn.moments(features, axes=[1, 2], keepdims=True)                 # [B, 1, 1, C]
    floor = _RELATIVE_EPSILON * tf.reduce_mean(variance, axis=3, keepdims=True) + 1e-12
    normalised = (features - mean) * tf.math.rsqrt(variance + floor)
    factor = max(1, features.shape[1] // _POOLED_SIDE)
    pooled = tf.nn.avg_pool2d(normalised, factor, factor, "VALID")                       # [B, 8, 8, C]
    return tf.reshape(pooled, [tf.shape(pooled)[0], -1])


def distances(a, b):
    """[B] RMS distance between rows of a and b ([B, F] each); finite gradient at 0."""
    return tf.sqrt(tf.reduce_mean(tf.square(a - b), axis=1) + 1e-12)


def squared_distances(a, b):
    """[M, K] mean squared distance between every row of a [M, F] and of b [K, F]."""
    cross = tf.matmul(a, b, transpose_b=True)                                            # [M, K]
    squared = (tf.reduce_sum(tf.square(a), axis=1)[:, None] + tf.reduce_sum(tf.square(b), axis=1)[None, :]
               - 2.0 * cross)
    return tf.maximum(squared, 0.0) / tf.cast(tf.shape(a)[1], a.dtype)
