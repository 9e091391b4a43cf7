"""BigGAN-style residual generator and discriminator (Brock et al. 2019; the SNGAN-projection ResNets,
Miyato & Koyama 2018); build them through cgan.model.networks.

    from cgan.model import resnet
    generator = resnet.build_generator(64, 100, 9, conditioning="cbn", channels=8)     # -> [B, 64, 64, 3]
    discriminator = resnet.build_discriminator(64, 9, conditioning="projection", norm="spectral")  # -> [B, 1]

At 64 px, with c = `channels`:

    G: [z ⊕ label embedding] -> Dense(4·4·16c) -> [4², 16c] -> up-blocks [8², 16c] [16², 8c] [32², 4c]
       [64², 2c] -> BN -> ReLU -> conv3×3(3) -> tanh               (128: ... [128², c]; 256: 8c twice)
       up-block: BN -> ReLU -> ×2 nearest -> conv3×3 -> BN -> ReLU -> conv3×3, + conv1×1 -> ×2 nearest
    D: [image ⊕ label plane] -> optimised block [32², c] -> down-blocks [16², 2c] [8², 4c] [4², 8c]
       -> block without pooling [4², 16c] -> ReLU -> sum over positions [B, 16c] -> Dense(1)
       optimised block: conv3×3 -> ReLU -> conv3×3 -> avgpool, + avgpool -> conv1×1 (no ReLU on the image)
       down-block: ReLU -> conv3×3 -> ReLU -> conv3×3 -> avgpool, + avgpool -> conv1×1 (identity where
                   the block neither pools nor changes the width)

A 1×1 convolution commutes with nearest upsampling and with average pooling, so the shortcuts apply it
on the smaller map: the papers' function at a quarter of the cost. A convolution followed by batch norm
has no bias. With "cbn" every BN in G's blocks is conditional; the last one stays plain, as in BigGAN.
D has no batch norm: its norm is "spectral" (BigGAN's and SNGAN's) or "none".
"""

import keras

from cgan.model import layers, layout
from cgan.model.conditioning import (batch_norm, class_minibatch_std, class_planes, discriminator_input,
                                     discriminator_inputs, generator_input, generator_inputs, generator_norm,
                                     projection_logit)

# Default base widths c: small, so that the residual networks still train on a CPU (BigGAN's own, 64 and
# up, are for accelerators). G's cost grows far faster with c than D's (its widest maps sit at the
# largest sides), hence a wider D.
G_CHANNELS = 8
D_CHANNELS = 16
SIZE = 4               # side of the generator's first feature map and of the discriminator's last
# Width multipliers of c: G's first map, then the output of each up-block (sides 8, 16, ..., R);
# D's block outputs (sides R/2, ..., 4, and 4 again for the last block, which does not pool).
# A resolution not listed is a KeyError.
_G_WIDTHS = {64: (16, 16, 8, 4, 2), 128: (16, 16, 8, 4, 2, 1), 256: (16, 16, 8, 8, 4, 2, 1)}
_D_WIDTHS = {64: (1, 2, 4, 8, 16), 128: (1, 2, 4, 8, 16, 16), 256: (1, 2, 4, 8, 8, 16, 16)}


def build_generator(resolution, latent_dim, num_classes, dtype="float32", synchronized_bn=False,
                    conditioning="concat", spectral_norm=False, attention_resolution=0, class_strength=False,
                    unconditional_below=0, channels=G_CHANNELS):
    """The residual generator; the arguments are networks.build_generator's, `channels` its c."""
    widths = [m * channels for m in _G_WIDTHS[resolution]]
    dense = layers.SpectralDense if spectral_norm else keras.layers.Dense
    conv = layers.SpectralConv2D if spectral_norm else keras.layers.Conv2D
    normalize = generator_norm(conditioning, num_classes, synchronized_bn, class_strength, dtype, unconditional_below)

    z, label = generator_inputs(latent_dim)
    x = generator_input(z, label, num_classes, conditioning, class_strength, dtype, bool(unconditional_below))
    x = dense(SIZE * SIZE * widths[0], dtype=dtype)(x)
    x = keras.layers.Reshape((SIZE, SIZE, widths[0]), dtype=dtype)(x)           # [B, 4, 4, 16c]
    for i, filters in enumerate(widths[1:]):
        side = SIZE << (i + 1)
        x = _up_block(x, label, filters, normalize, conv, dtype)                # [B, side, side, filters]
        x = _attend(x, side, attention_resolution, spectral_norm, dtype)
        if side == unconditional_below:   # the class-free layout layers end here; the class enters
            x = layout.mark_features(x, dtype)
            x = class_planes(x, label, num_classes, conditioning, class_strength, dtype)
    x = batch_norm(dtype, synchronized_bn)(x)
    x = keras.layers.ReLU(dtype=dtype)(x)
    x = conv(3, 3, padding="same", dtype=dtype)(x)                              # [B, R, R, 3]
    image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)   # [B, R, R, 3]
    return keras.Model([z, label], image, name="generator")


def build_discriminator(resolution, num_classes, dtype="float32", synchronized_bn=False, conditioning="concat",
                        norm="spectral", attention_resolution=0, class_strength=False, minibatch_std=False, pack=1,
                        channels=D_CHANNELS):
    """The residual discriminator; the arguments are networks.build_discriminator's, `channels` its c.

    synchronized_bn is accepted for the common signature; this D has no batch norm.
    """
    # D at 64: [c, 2c, 4c, 8c, 16c] at sides [32, 16, 8, 4, 4]; the last block does not pool.
    widths = [m * channels for m in _D_WIDTHS[resolution]]
    spectral = norm == "spectral"
    dense = layers.SpectralDense if spectral else keras.layers.Dense
    conv = layers.SpectralConv2D if spectral else keras.layers.Conv2D

    image, label = discriminator_inputs(resolution, pack)
    x = discriminator_input(image, label, resolution, num_classes, conditioning, dense, class_strength, dtype)
    side = resolution
    for i, filters in enumerate(widths):
        pool = i < len(widths) - 1
        side //= 2 if pool else 1
        x = _down_block(x, filters, conv, dtype, first=i == 0, pool=pool)       # [B, side, side, filters]
        x = _attend(x, side, attention_resolution, spectral, dtype)
    x = keras.layers.ReLU(dtype=dtype)(x)                                       # [B, 4, 4, 16c]
    if minibatch_std:
        x = class_minibatch_std(x, label, conv, lambda: keras.layers.ReLU(dtype=dtype), dtype)
    if conditioning == "projection":
        logit = projection_logit(x, label, num_classes, dense, spectral, class_strength)  # [B, 1]
    else:
        features = layers.GlobalSumPooling2D(dtype="float32", name="features")(x)  # φ(x) [B, 16c]
        logit = dense(1, dtype="float32", name="logit")(features)               # [B, 1]
    return keras.Model([image, label], logit, name="discriminator")


def _up_block(x, label, filters, normalize, conv, dtype):
    """The generator's block: [B, s, s, C] -> [B, 2s, 2s, filters]."""
    h = normalize(x, label)
    h = keras.layers.ReLU(dtype=dtype)(h)
    h = keras.layers.UpSampling2D(2, interpolation="nearest", dtype=dtype)(h)
    h = conv(filters, 3, padding="same", use_bias=False, dtype=dtype)(h)
    h = normalize(h, label)
    h = keras.layers.ReLU(dtype=dtype)(h)
    h = conv(filters, 3, padding="same", dtype=dtype)(h)                        # [B, 2s, 2s, filters]
    shortcut = conv(filters, 1, dtype=dtype)(x)                                 # [B, s, s, filters]
    shortcut = keras.layers.UpSampling2D(2, interpolation="nearest", dtype=dtype)(shortcut)
    return keras.layers.Add(dtype=dtype)([h, shortcut])


def _down_block(x, filters, conv, dtype, first, pool):
    """The discriminator's block: [B, s, s, C] -> [B, s/2, s/2, filters] (s without pooling).

    The first block (BigGAN's "optimised" block) sees the image itself: no ReLU before its first conv.
    """
    h = x if first else keras.layers.ReLU(dtype=dtype)(x)
    h = conv(filters, 3, padding="same", dtype=dtype)(h)
    h = keras.layers.ReLU(dtype=dtype)(h)
    h = conv(filters, 3, padding="same", dtype=dtype)(h)                        # [B, s, s, filters]
    shortcut = x
    if pool:
        h = keras.layers.AveragePooling2D(2, dtype=dtype)(h)                    # [B, s/2, s/2, filters]
        shortcut = keras.layers.AveragePooling2D(2, dtype=dtype)(shortcut)
    if pool or x.shape[-1] != filters:
        shortcut = conv(filters, 1, dtype=dtype)(shortcut)
    return keras.layers.Add(dtype=dtype)([h, shortcut])


def _attend(x, side, attention_resolution, spectral_norm, dtype):
    """x, then a self-attention block if x's side is the one asked for."""
    if side == attention_resolution:
        x = layers.SelfAttention2D(spectral_norm=spectral_norm, dtype=dtype)(x)
    return x
