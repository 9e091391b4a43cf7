"""The coarse layout learned from every class (--unconditional_below, after UTLO, Khorram et al. 2024).

    generator = networks.build_generator(64, 100, 9, unconditional_below=8)    # class-free up to 8×8
    both = layout.generator_with_features(generator)          # [z, label] -> [image [B, 64, 64, 3], features [B, 8, 8, 256]]
    head = layout.build_head(both.outputs[1].shape, dtype)    # features -> [B, 8, 8, 3] tanh: G's layout image
    judge = layout.build_discriminator(8, dtype, spectral=True)   # [B, 8, 8, 3] -> [B, 1] float32, no class

G's layers up to side S take z alone: the class enters after them (conditioning.class_planes for
concat; only the conditional batch norms after S see it with cbn). The features at S, marked by a layer
named FEATURES, are therefore the same for every class, and a small head turns them into an S×S image
that an unconditional discriminator compares with the real images average-pooled to S×S, over all
classes together. So the noise, not the label, decides the coarse layout, and every class's images
teach it. The head and the layout discriminator only train: the exported generator is the network
without them, and with the option off no layer is added.
"""

import keras

from cgan.model import layers

FEATURES = "layout_features"   # the layer that marks G's class-free features
_CHANNELS = 64                 # the layout discriminator's first width; doubled at each halving
_LEAKY_SLOPE = 0.2
_SMALLEST = 4                  # the layout discriminator halves its map down to this side


def mark_features(x, dtype):
    """x unchanged, through an identity layer named FEATURES (where generator_with_features reads)."""
    return keras.layers.Identity(dtype=dtype, name=FEATURES)(x)


def generator_with_features(generator):
    """A model sharing `generator`'s layers: [z, label] -> [image, class-free features at side S].

    Raises:
        ValueError: the generator was built without unconditional_below.
    """
    try:
        features = generator.get_layer(FEATURES).output
    except ValueError:
        raise ValueError(f"generator {generator.name!r} has no {FEATURES} layer: build it with "
                         f"unconditional_below") from None
    return keras.Model(generator.inputs, [generator.output, features], name="generator_with_layout")


def build_head(features_shape, dtype):
    """[B, S, S, C] features -> [B, S, S, 3] float32 in [-1, 1]: G's image at the layout's side."""
    features = keras.Input(shape=tuple(features_shape[1:]), name="layout_features")
    x = keras.layers.Conv2D(3, 1, dtype=dtype)(features)
    image = keras.layers.Activation("tanh", dtype="float32", name="layout_image")(x)
    return keras.Model(features, image, name="layout_head")


def build_discriminator(side, dtype, spectral):
    """The unconditional judge of S×S images: [B, S, S, 3] in [-1, 1] -> logit [B, 1] float32.

    A 3×3 convolution, then stride-2 convolutions down to 4×4, each followed by LeakyReLU(0.2); no batch
    norm, spectral norm on every kernel when `spectral`.
    """
    conv = layers.SpectralConv2D if spectral else keras.layers.Conv2D
    dense = layers.SpectralDense if spectral else keras.layers.Dense
    image = keras.Input(shape=(side, side, 3), name="layout_image")
    x = conv(_CHANNELS, 3, padding="same", dtype=dtype)(image)
    x = keras.layers.LeakyReLU(_LEAKY_SLOPE, dtype=dtype)(x)
    channels = _CHANNELS
    while side > _SMALLEST:
        channels, side = channels * 2, side // 2
        x = conv(channels, 4, strides=2, padding="same", dtype=dtype)(x)
        x = keras.layers.LeakyReLU(_LEAKY_SLOPE, dtype=dtype)(x)               # [B, side, side, channels]
    x = keras.layers.Flatten(dtype=dtype)(x)
    logit = dense(1, dtype="float32", name="layout_logit")(x)                   # [B, 1]
    return keras.Model(image, logit, name="layout_discriminator")
