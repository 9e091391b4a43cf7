"""The baseline's DCGAN generator and discriminator; build them through cgan.model.networks.

    from cgan.model import dcgan
    generator = dcgan.build_generator(64, latent_dim=100, num_classes=9)   # [z, label] -> [B, 64, 64, 3]
    discriminator = dcgan.build_discriminator(64, num_classes=9)          # [image, label] -> [B, 1] float32

At 64 px (kernel 4, stride 2, 'same' padding everywhere):

    G: [z ⊕ label embedding] -> Dense(8·8·256) + BN + LReLU(0.2) -> [8², 256]
       -> ConvT(128) + BN + LReLU [16²] -> ConvT(64) + BN + LReLU [32²] -> ConvT(3) + tanh [64²]
    D: [image ⊕ label plane] -> Conv(64) + LReLU [32²] -> Conv(128) + BN + LReLU [16²]
       -> Conv(256) + BN + LReLU [8²] -> Flatten -> Dense(1) (float32 logit)

Each doubling of the resolution adds one block on the outside of both networks with half its
neighbour's channels (G at 128: 256 -> 128 -> 64 -> 32 -> 3), so the 8×8×256 core is the same at every
size. D's first block has no batch norm, as in the baseline; a convolution followed by batch norm has no
bias (the norm removes it). With "cbn" every BN of G is conditional; with "projection" D ends in
conditioning.projection_logit instead of Flatten -> Dense.
"""

import keras

from cgan.core.config import feature_sides
from cgan.model import layers
from cgan.model import layout
from cgan.model.conditioning import (batch_norm, class_minibatch_std, class_planes, discriminator_input,
                                     discriminator_inputs, generator_input, generator_inputs, generator_norm,
                                     projection_logit)

BASE_SIZE = 8          # spatial size of the generator's first feature map
BASE_CHANNELS = 256    # channels at BASE_SIZE, in both networks
KERNEL_SIZE = 4
LEAKY_SLOPE = 0.2
# Channels of G's feature maps at sides 2·BASE_SIZE, 4·BASE_SIZE, ..., resolution/2, halving from
# BASE_CHANNELS; D uses them in reverse. A resolution not listed is a KeyError.
_CHANNELS = {64: (128, 64), 128: (128, 64, 32), 256: (128, 64, 32, 16)}


def build_generator(resolution, latent_dim, num_classes, dtype="float32", synchronized_bn=False,
                    conditioning="concat", spectral_norm=False, attention_resolution=0, class_strength=False,
                    unconditional_below=0):
    """The DCGAN generator; the arguments are networks.build_generator's."""
    channels = _CHANNELS[resolution]
    dense = layers.SpectralDense if spectral_norm else keras.layers.Dense
    conv_transpose = layers.SpectralConv2DTranspose if spectral_norm else keras.layers.Conv2DTranspose
    normalize = generator_norm(conditioning, num_classes, synchronized_bn, class_strength, dtype, unconditional_below)

    def end_of_block(x, side):
        x = _attend(x, side, attention_resolution, spectral_norm, dtype)
        if side == unconditional_below:   # the class-free layout layers end here; the class enters
            x = layout.mark_features(x, dtype)
            x = class_planes(x, label, num_classes, conditioning, class_strength, dtype)
        return x

    z, label = generator_inputs(latent_dim)
    x = generator_input(z, label, num_classes, conditioning, class_strength, dtype, bool(unconditional_below))
    x = dense(BASE_SIZE * BASE_SIZE * BASE_CHANNELS, use_bias=False, dtype=dtype)(x)
    x = normalize(x, label)
    x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)
    x = keras.layers.Reshape((BASE_SIZE, BASE_SIZE, BASE_CHANNELS), dtype=dtype)(x)  # [B, 8, 8, 256]
    x = end_of_block(x, BASE_SIZE)
    for filters, side in zip(channels, feature_sides(resolution)[1:]):
        x = conv_transpose(filters, KERNEL_SIZE, strides=2, padding="same", use_bias=False, dtype=dtype)(x)
        x = normalize(x, label)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)                 # [B, side, side, filters]
        x = end_of_block(x, side)
    x = conv_transpose(3, KERNEL_SIZE, strides=2, padding="same", dtype=dtype)(x)
    image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)   # [B, R, R, 3]
    return keras.Model([z, label], image, name="generator")


def build_discriminator(resolution, num_classes, dtype="float32", synchronized_bn=False, conditioning="concat",
                        norm="batch", attention_resolution=0, class_strength=False, minibatch_std=False, pack=1):
    """The DCGAN discriminator; the arguments are networks.build_discriminator's."""
    # D at 64: [64, 128, 256] at sides [32, 16, 8].
    filters = list(reversed(_CHANNELS[resolution])) + [BASE_CHANNELS]
    spectral = norm == "spectral"
    dense = layers.SpectralDense if spectral else keras.layers.Dense
    conv = layers.SpectralConv2D if spectral else keras.layers.Conv2D

    image, label = discriminator_inputs(resolution, pack)
    x = discriminator_input(image, label, resolution, num_classes, conditioning, dense, class_strength, dtype)
    for i, (f, side) in enumerate(zip(filters, reversed(feature_sides(resolution)))):
        normalized = norm == "batch" and i > 0
        x = conv(f, KERNEL_SIZE, strides=2, padding="same", use_bias=not normalized, dtype=dtype)(x)
        if normalized:
            x = batch_norm(dtype, synchronized_bn)(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)                 # [B, side, side, f]
        x = _attend(x, side, attention_resolution, spectral, dtype)
    if minibatch_std:
        x = class_minibatch_std(x, label, conv, lambda: keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype), dtype)
    if conditioning == "projection":
        logit = projection_logit(x, label, num_classes, dense, spectral, class_strength)  # [B, 1]
    else:
        x = keras.layers.Flatten(dtype=dtype)(x)                                # [B, 8·8·256]
        logit = dense(1, dtype="float32", name="logit")(x)                      # [B, 1]
    return keras.Model([image, label], logit, name="discriminator")


def _attend(x, side, attention_resolution, spectral_norm, dtype):
    """x, then a self-attention block if x's side is the one asked for."""
    if side == attention_resolution:
        x = layers.SelfAttention2D(spectral_norm=spectral_norm, dtype=dtype)(x)
    return x
