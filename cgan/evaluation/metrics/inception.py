"""Inception-v3 pool features, the feature space of FID and KID.

    extractor, skipped = inception.load("imagenet")        # or a weights file, or "none"
    if extractor is None:
        print("Inception metrics skipped:", skipped)
    features = extractor(images)                          # [N, R, R, 3] uint8 -> [N, 2048] float32

Images are resized to 299×299 with bilinear interpolation (`tf.image.resize`; from 64–256 pixels this
only upsamples, so antialiasing plays no part), scaled to [-1, 1] by
`keras.applications.inception_v3.preprocess_input`, and read out after the global average pool of
`keras.applications.InceptionV3(include_top=False, pooling="avg")`.

Weights: "imagenet" asks Keras, which uses its cache (~/.keras/models) or downloads the no-top weights
file; offline without that cache, `load` returns no extractor and a one-line reason, and the caller
goes on without Inception metrics. A path loads a local file: the Keras no-top file
(`inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`, copied from a machine with internet) or
any `.weights.h5` saved from `InceptionV3(include_top=False, pooling="avg")`.

These are Keras' ImageNet weights, not the 2015 TensorFlow graph of the reference FID code, so FID
values are comparable between reports of this tool, not with published numbers.
"""

import hashlib
import os

import keras
import numpy as np
import tensorflow as tf

from cgan.core import seeding
from cgan.core import options
from cgan.core.errors import UserError
from cgan.evaluation.metrics import float32_policy

INPUT_SIZE = 299
FEATURE_DIM = 2048
RESIZE_METHOD = "bilinear"
IMAGENET = options.INCEPTION_IMAGENET
NONE = "none"
_BATCH = 32  # images per inference call, few enough that their 299×299 activations fit any device


def build(weights=None):
    """InceptionV3 without its classifier head, average-pooled; float32 whatever the global policy.

    Args:
        weights: None (random), "imagenet" or a weights file path, as keras.applications takes them.
    """
    if weights is None:
        seeding.set_global_seed(0)  # the same random network every time (its layers take no seeds)
    with float32_policy():
        return keras.applications.InceptionV3(weights=weights, include_top=False, pooling="avg",
                                              input_shape=(INPUT_SIZE, INPUT_SIZE, 3))


class InceptionFeatures:
    """Callable: uint8 images of any square size -> [N, 2048] Inception pool features."""

    def __init__(self, model, weights):
        """
        Args:
            model: a model from `build`.
            weights: how its weights were obtained ("imagenet", a path, "random"), for reports.
        """
        self.model = model
        self.weights = weights
        self._digest = None
        self._forward = tf.function(self._features, reduce_retracing=True)

    def _features(self, images):                                          # [B, R, R, 3] uint8
        pixels = tf.image.resize(tf.cast(images, tf.float32), [INPUT_SIZE, INPUT_SIZE],
                                 method=RESIZE_METHOD)                     # [B, 299, 299, 3] in [0, 255]
        inputs = keras.applications.inception_v3.preprocess_input(pixels)  # [-1, 1]
        return self.model(inputs, training=False)                          # [B, 2048]

    def __call__(self, images, batch_size=_BATCH):
        """[N, R, R, 3] uint8 -> [N, 2048] float32 numpy."""
        if len(images) == 0:
            return np.zeros((0, FEATURE_DIM), np.float32)
        return np.concatenate([self._forward(tf.constant(images[start:start + batch_size])).numpy()
                               for start in range(0, len(images), batch_size)])

    def digest(self):
        """SHA-256 of the weights: names a cache of features computed with exactly these weights."""
        if self._digest is None:
            hasher = hashlib.sha256()
            for weight in self.model.weights:
                hasher.update(np.ascontiguousarray(weight.numpy()).tobytes())
            self._digest = hasher.hexdigest()
        return self._digest

    def description(self):
        return {"weights": self.weights, "features": f"global average pool, {FEATURE_DIM}-D",
                "resize": f"{RESIZE_METHOD} to {INPUT_SIZE}x{INPUT_SIZE} (tf.image.resize)",
                "preprocess": "keras.applications.inception_v3.preprocess_input (x / 127.5 - 1)"}


def load(weights=IMAGENET):
    """The Inception feature extractor, or the reason there is none.

    Args:
        weights: "imagenet" (Keras' cache or a download), "none" (skip), or the path of a weights file.

    Returns:
        (InceptionFeatures, None), or (None, one-line reason) when the ImageNet weights cannot be
        fetched or weights == "none".

    Raises:
        UserError: a weights path that does not exist or does not fit InceptionV3.
    """
    if not weights or weights == NONE:
        return None, "disabled (--inception_weights=none)"
    if weights == IMAGENET:
        # Keras prints "Downloading data from ..." to stdout; send it to the log so that an offline
        # machine gets the caller's one-line warning and nothing else.
        interactive = keras.config.is_interactive_logging_enabled()
        keras.config.disable_interactive_logging()
        try:
            return InceptionFeatures(build(IMAGENET), IMAGENET), None
        except Exception as e:  # get_file raises a bare Exception for network errors
            first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
            return None, (f"cannot get the ImageNet InceptionV3 weights ({first_line}); pass "
                          f"--inception_weights=PATH to a local copy of the Keras no-top weights file")
        finally:
            if interactive:
                keras.config.enable_interactive_logging()
    path = os.path.expanduser(weights)
    if not os.path.isfile(path):
        raise UserError(f"--inception_weights={weights}: no such file; pass a local copy of Keras' "
                        f"inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5, 'imagenet' or 'none'")
    try:
        model = build(path)
    except Exception as e:  # h5py and Keras raise many types for a wrong or damaged file
        message = str(e).splitlines()[0] if str(e) else ""
        raise UserError(f"--inception_weights={weights} cannot be loaded into InceptionV3 without its top "
                        f"({type(e).__name__}: {message}): pass the no-top weights file") from None
    return InceptionFeatures(model, os.path.abspath(path)), None
