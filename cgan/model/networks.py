"""The conditional generator and discriminator, at 64, 128 or 256 pixels: the baseline's DCGAN (the
default) or BigGAN-style residual networks, with optional architecture changes (conditional batch
norm, projection, spectral norm, self-attention) and an optional class-signal strength λ.

    from cgan.model import networks
    generator = networks.build_generator(resolution=64, latent_dim=100, num_classes=9)
    images = generator([z, labels])              # z [B, 100] float, labels [B] int -> [B, 64, 64, 3] in [-1, 1]
    discriminator = networks.build_discriminator(resolution=64, num_classes=9)
    logits = discriminator([images, labels])     # [B, 1] float32

    # SAGAN/BigGAN-style options; the inputs and outputs stay the same.
    generator = networks.build_generator(64, 100, 9, conditioning="cbn", spectral_norm=True,
                                         attention_resolution=32)
    discriminator = networks.build_discriminator(64, 9, conditioning="projection", norm="spectral",
                                                 attention_resolution=32)

    # Residual networks; `channels` is the base width (None: RESNET_G_CHANNELS, RESNET_D_CHANNELS).
    generator = networks.build_generator(64, 100, 9, architecture="resnet", conditioning="cbn")
    discriminator = networks.build_discriminator(64, 9, architecture="resnet", conditioning="projection",
                                                 norm="spectral", channels=32)

    # Transitional training: start unconditional, ramp the class signal in.
    generator = networks.build_generator(64, 100, 9, class_strength=True)
    networks.set_class_strength(generator, 0.0)  # eagerly or in a tf.function; the label has no effect
    networks.class_strength(generator)           # float32 scalar tensor, 0.0

DCGAN (architecture="dcgan", the baseline's; kernel 4, stride 2, 'same' padding everywhere):

    G: [z ⊕ Embedding(label, 50)] -> Dense(8·8·256) + BN + LeakyReLU(0.2) -> reshape [8, 8, 256]
       -> Conv2DTranspose(128) + BN + LReLU [16²] -> Conv2DTranspose(64) + BN + LReLU [32²]
       -> Conv2DTranspose(3) + tanh [64²]
    D: [image ⊕ label plane (Embedding(label, 50) -> Dense(R·R) -> [R, R, 1])]
       -> Conv2D(64) + LReLU [32²] -> Conv2D(128) + BN + LReLU [16²] -> Conv2D(256) + BN + LReLU [8²]
       -> Flatten -> Dense(1) (float32 logit)

Each doubling of the resolution adds one block on the outside of both networks with half the
channels of its neighbour (G at 128: 256 -> 128 -> 64 -> 32 -> 3; D at 128: 32 -> 64 -> 128 -> 256),
so the 8×8×256 core is the same at every size.

ResNet (architecture="resnet"; BigGAN, Brock et al. 2019, and the SNGAN-projection ResNets, Miyato &
Koyama 2018), with c = `channels`:

    G: [z ⊕ Embedding(label, 50)] -> Dense(4·4·16c) -> reshape [4, 4, 16c]
       -> up-blocks to [8², 16c] [16², 8c] [32², 4c] [64², 2c] (128: ... [128², c]; 256: 8c twice)
       -> BN -> ReLU -> conv3×3(3) -> tanh
       up-block: BN -> ReLU -> ×2 nearest -> conv3×3 -> BN -> ReLU -> conv3×3, plus the shortcut
                 conv1×1 -> ×2 nearest
    D: [image ⊕ label plane] -> optimised block [R/2, c] -> down-blocks [R/4, 2c] ... [4², 8c]
       -> block without pooling [4², 16c] -> ReLU -> sum over positions φ(x) [B, 16c] -> Dense(1)
       (128: [64², c] ... [4², 16c] [4², 16c]; 256: 8c twice)
       optimised block: conv3×3 -> ReLU -> conv3×3 -> 2×2 average pool, plus avgpool -> conv1×1
       down-block: ReLU -> conv3×3 -> ReLU -> conv3×3 -> avgpool, plus avgpool -> conv1×1 (the
                   identity where the block neither pools nor changes the width)

A 1×1 convolution commutes with nearest upsampling and with average pooling, so the shortcuts apply
it on the smaller map (4× fewer FLOPs, the same function as the papers' order). The convolution
just before a batch norm has no bias (the norm removes it). The resnet D has no batch norm: its
norm is "spectral" (the default of BigGAN and SNGAN) or "none".

Options (every default builds the DCGAN above, layer for layer):

    G conditioning="cbn"        z alone goes into the Dense; every BN of G (resnet: every BN in the
                                blocks; the last one stays plain, as in BigGAN) becomes conditional
                                batch norm with a per-class gain and bias (Miyato & Koyama 2018),
                                starting at 1 and 0, so at initialisation the label has no effect yet.
    G spectral_norm=True        spectral normalisation of G's Dense and convolution kernels (and of
                                the attention block's convolutions); the batch norms stay.
    D conditioning="projection" no label plane: logit = ψ(φ(x)) + <Embedding(label, C), φ(x)>, with
                                φ(x) the sum over positions of the last features [B, C] and ψ a
                                Dense(1) (Miyato & Koyama 2018). With norm="batch" the sum over 64
                                positions starts the logits at tens; with "spectral" or "none" at a
                                few units.
    D norm="spectral"           spectral normalisation of every Conv2D and Dense (label plane,
                                logit, attention) and of the projection embedding; no batch norm.
    D norm="none"               neither. Without batch norm every conv has a bias.
    attention_resolution=S      a SAGAN self-attention block (Zhang et al. 2019) after the block whose
                                output has side S, one of the feature-map sides 8, 16, ..., R/2
                                (0: none). Its γ starts at 0, so it begins as the identity.
    class_strength=True         a layers.ClassStrength λ (non-trainable float32, starting at 1)
                                scales the class signal: in G the label embedding (concat) or the
                                class-dependent part of every conditional batch norm (gain − 1 and
                                bias, cbn); in D the label plane (concat) or the projection term
                                (projection). λ = 0: the output does not depend on the label; λ = 1:
                                the same function as the network built without the option. Off, the
                                model is the one built before the option existed: same layers,
                                weights, names and checkpoint keys.

The layers behind the options live in cgan.model.layers; importing this module registers them, which
keras.models.load_model needs for models built with an option on.

`dtype` is a Keras dtype policy name ("float32", "mixed_float16", "mixed_bfloat16"). The generator's
tanh and the discriminator's logit are always float32, so images and losses never leave float32.
"""

import keras
import tensorflow as tf
from keras import ops

from cgan.model import layers
from cgan.core.config import ARCHITECTURES, DISCRIMINATOR_CONDITIONINGS, DISCRIMINATOR_NORMS, GENERATOR_CONDITIONINGS

RESOLUTIONS = (64, 128, 256)
EMBEDDING_DIM = 50
BASE_SIZE = 8          # spatial size of the DCGAN generator's first feature map
BASE_CHANNELS = 256    # DCGAN channels at BASE_SIZE, in both networks
KERNEL_SIZE = 4
LEAKY_SLOPE = 0.2
BN_MOMENTUM = 0.9      # Keras' default 0.99 lags far behind a GAN's fast-moving statistics
# Label embeddings start at the scale of z ~ N(0, 1). Keras' default (uniform ±0.05) makes the label
# ~20× weaker than the noise at the start, and Adam moves each entry by about the learning rate per
# step, so the class signal takes thousands of steps just to reach the noise's scale.
EMBEDDING_STDDEV = 1.0

# Residual networks. The default widths keep a training step on a CPU within a small multiple of the
# DCGAN's; BigGAN's own widths (64 and up) are for accelerators. G's cost grows far faster with c than
# D's (its widest maps sit at the largest sides), hence a wider D.
RESNET_G_CHANNELS = 8
RESNET_D_CHANNELS = 16
RESNET_SIZE = 4        # side of the residual generator's first feature map and of D's last
# Width multipliers of c: G's first map, then the output of each up-block (sides 8, 16, ..., R);
# D's block outputs (sides R/2, ..., 4, and 4 again for the last block, which does not pool).
_RESNET_G_WIDTHS = {64: (16, 16, 8, 4, 2), 128: (16, 16, 8, 4, 2, 1), 256: (16, 16, 8, 8, 4, 2, 1)}
_RESNET_D_WIDTHS = {64: (1, 2, 4, 8, 16), 128: (1, 2, 4, 8, 16, 16), 256: (1, 2, 4, 8, 8, 16, 16)}
RESNET_DISCRIMINATOR_NORMS = tuple(norm for norm in DISCRIMINATOR_NORMS if norm != "batch")


def _num_blocks(resolution):
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
    return {64: 3, 128: 4, 256: 5}[resolution]


def _channels(resolution):
    """Channels of the DCGAN feature maps at 2·BASE_SIZE, 4·BASE_SIZE, ... up to resolution/2."""
    # G at 64: [128, 64]; at 128: [128, 64, 32]; at 256: [128, 64, 32, 16].
    return [BASE_CHANNELS >> (i + 1) for i in range(_num_blocks(resolution) - 1)]


def feature_sides(resolution):
    """Sides of the hidden feature maps where attention may go, in both networks and both architectures:
    (8, 16, ..., resolution/2)."""
    return tuple(BASE_SIZE << i for i in range(_num_blocks(resolution)))


def _check_choice(option, value, choices):
    if not isinstance(value, type(choices[0])) or value not in choices:
        raise ValueError(f"{option} must be one of {choices}, got {value!r}")


def _check_attention_resolution(value, resolution):
    sides = feature_sides(resolution)
    if isinstance(value, bool) or value not in (0,) + sides:
        raise ValueError(f"attention_resolution must be 0 (no attention) or one of the feature-map sides "
                         f"{sides} at resolution {resolution}, got {value!r}")


def _check_architecture(architecture, channels, default):
    _check_choice("architecture", architecture, ARCHITECTURES)
    if architecture == "dcgan" and channels is not None:
        raise ValueError(f"channels sets the width of the resnet networks; the dcgan networks have fixed "
                         f"widths: leave it None, got {channels!r}")
    if architecture == "resnet" and channels is not None and (
            not isinstance(channels, int) or isinstance(channels, bool) or channels < 1):
        raise ValueError(f"channels must be a positive int (None: {default}), got {channels!r}")


def _label_embedding(num_classes, dtype):
    initializer = keras.initializers.RandomNormal(stddev=EMBEDDING_STDDEV)
    return keras.layers.Embedding(num_classes, EMBEDDING_DIM, embeddings_initializer=initializer, dtype=dtype,
                                  name="label_embedding")


def _batch_norm(dtype, synchronized):
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=synchronized, dtype=dtype)


def _strength(class_strength, dtype):
    """λ · x where the option is on, x itself where it is off (no layer, so no change to the model)."""
    if class_strength:
        return layers.ClassStrength(dtype=dtype, name="class_strength")
    return lambda x: x


# ---------------------------------------------------------------------------------------------------
# Conditioning, shared by both architectures.


def _generator_input(z, label, num_classes, conditioning, class_strength, dtype):
    """What goes into G's first Dense: z ⊕ λ·embedding(label) (concat) or z alone (cbn)."""
    if conditioning == "concat":
        embedded = _label_embedding(num_classes, dtype)(label)                  # [B, 50]
        embedded = _strength(class_strength, dtype)(embedded)
        return keras.layers.Concatenate(dtype=dtype)([z, embedded])             # [B, latent_dim + 50]
    return z                                                                    # [B, latent_dim]


def _generator_norm(conditioning, num_classes, synchronized, class_strength, dtype):
    """G's batch norm as a function of (x, label): conditional (cbn) or plain (concat)."""
    def normalize(x, label):
        if conditioning == "cbn":
            return layers.ConditionalBatchNormalization(num_classes, momentum=BN_MOMENTUM, synchronized=synchronized,
                                                        class_strength=class_strength, dtype=dtype)([x, label])
        return _batch_norm(dtype, synchronized)(x)
    return normalize


def _discriminator_input(image, label, resolution, num_classes, conditioning, dense, class_strength, dtype):
    """D's input: image ⊕ λ·label plane (concat) or the image alone (projection)."""
    if conditioning == "concat":
        plane = _label_embedding(num_classes, dtype)(label)                     # [B, 50]
        plane = dense(resolution * resolution, dtype=dtype)(plane)              # [B, R·R]
        plane = _strength(class_strength, dtype)(plane)
        plane = keras.layers.Reshape((resolution, resolution, 1), dtype=dtype)(plane)  # [B, R, R, 1]
        return keras.layers.Concatenate(dtype=dtype)([image, plane])            # [B, R, R, 4]
    return image                                                                # [B, R, R, 3]


def _projection_logit(x, label, num_classes, dense, spectral, class_strength):
    """ψ(φ(x)) + λ·<E(label), φ(x)> from D's last features x [B, H, W, C]; float32 [B, 1]."""
    features = layers.GlobalSumPooling2D(dtype="float32", name="features")(x)    # φ(x) [B, C]
    unconditional = dense(1, dtype="float32", name="unconditional_logit")(features)  # ψ(φ) [B, 1]
    embedding = layers.SpectralEmbedding if spectral else keras.layers.Embedding
    embedded = embedding(num_classes, x.shape[-1], embeddings_initializer="glorot_uniform",
                         dtype="float32", name="projection_embedding")(label)   # [B, C]
    projection = keras.layers.Dot(axes=1, dtype="float32", name="projection")([embedded, features])  # [B, 1]
    projection = _strength(class_strength, "float32")(projection)
    return keras.layers.Add(dtype="float32", name="logit")([unconditional, projection])  # [B, 1]


# ---------------------------------------------------------------------------------------------------
# Builders.


def build_generator(resolution, latent_dim, num_classes, dtype="float32", synchronized_bn=False,
                    conditioning="concat", spectral_norm=False, attention_resolution=0, architecture="dcgan",
                    channels=None, class_strength=False):
    """Builds the conditional generator.

    Args:
        resolution: output side in pixels, one of RESOLUTIONS.
        latent_dim: size of the noise vector z.
        num_classes: number of labels the embedding accepts.
        dtype: Keras dtype policy name for the hidden layers.
        synchronized_bn: share batch-norm statistics across replicas (needed with >1 replica).
        conditioning: "concat" (z ⊕ label embedding into the Dense) or "cbn" (conditional batch norm).
        spectral_norm: spectrally normalise the Dense and convolution kernels.
        attention_resolution: 0, or the side (one of feature_sides(resolution)) after whose block a
            self-attention block goes.
        architecture: "dcgan" (the baseline's) or "resnet" (BigGAN-style residual blocks).
        channels: the resnet's base width c (None: RESNET_G_CHANNELS); must be None for "dcgan".
        class_strength: scale the class signal by a ClassStrength λ (see set_class_strength).

    Returns:
        keras.Model named "generator": inputs [z [B, latent_dim] float32, label [B] int32],
        output [B, resolution, resolution, 3] float32 in [-1, 1].

    Raises:
        ValueError: an unknown resolution or option value.
    """
    _num_blocks(resolution)
    _check_choice("conditioning", conditioning, GENERATOR_CONDITIONINGS)
    _check_choice("spectral_norm", spectral_norm, (False, True))
    _check_attention_resolution(attention_resolution, resolution)
    _check_architecture(architecture, channels, RESNET_G_CHANNELS)
    _check_choice("class_strength", class_strength, (False, True))
    dense = layers.SpectralDense if spectral_norm else keras.layers.Dense
    normalize = _generator_norm(conditioning, num_classes, synchronized_bn, class_strength, dtype)

    def attend(x, side):
        if side == attention_resolution:
            x = layers.SelfAttention2D(spectral_norm=spectral_norm, dtype=dtype)(x)
        return x

    z = keras.Input(shape=(latent_dim,), dtype="float32", name="z")
    label = keras.Input(shape=(), dtype="int32", name="label")
    x = _generator_input(z, label, num_classes, conditioning, class_strength, dtype)
    if architecture == "resnet":
        conv = layers.SpectralConv2D if spectral_norm else keras.layers.Conv2D
        widths = [m * (channels or RESNET_G_CHANNELS) for m in _RESNET_G_WIDTHS[resolution]]
        x = dense(RESNET_SIZE * RESNET_SIZE * widths[0], dtype=dtype)(x)
        x = keras.layers.Reshape((RESNET_SIZE, RESNET_SIZE, widths[0]), dtype=dtype)(x)  # [B, 4, 4, 16c]
        for i, filters in enumerate(widths[1:]):
            x = _up_block(x, label, filters, normalize, conv, dtype)            # [B, side, side, filters]
            x = attend(x, RESNET_SIZE << (i + 1))
        x = _batch_norm(dtype, synchronized_bn)(x)
        x = keras.layers.ReLU(dtype=dtype)(x)
        x = conv(3, 3, padding="same", dtype=dtype)(x)                          # [B, R, R, 3]
    else:
        conv_transpose = layers.SpectralConv2DTranspose if spectral_norm else keras.layers.Conv2DTranspose
        x = dense(BASE_SIZE * BASE_SIZE * BASE_CHANNELS, use_bias=False, dtype=dtype)(x)
        x = normalize(x, label)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)
        x = keras.layers.Reshape((BASE_SIZE, BASE_SIZE, BASE_CHANNELS), dtype=dtype)(x)  # [B, 8, 8, 256]
        x = attend(x, BASE_SIZE)
        for filters, side in zip(_channels(resolution), feature_sides(resolution)[1:]):
            x = conv_transpose(filters, KERNEL_SIZE, strides=2, padding="same", use_bias=False, dtype=dtype)(x)
            x = normalize(x, label)
            x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)             # [B, side, side, filters]
            x = attend(x, side)
        x = conv_transpose(3, KERNEL_SIZE, strides=2, padding="same", dtype=dtype)(x)
    image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)   # [B, R, R, 3]
    return keras.Model([z, label], image, name="generator")


def build_discriminator(resolution, num_classes, dtype="float32", synchronized_bn=False,
                        conditioning="concat", norm="batch", attention_resolution=0, architecture="dcgan",
                        channels=None, class_strength=False, minibatch_std=False):
    """Builds the conditional discriminator.

    Args:
        resolution: input side in pixels, one of RESOLUTIONS.
        num_classes: number of labels the embedding accepts.
        dtype: Keras dtype policy name for the hidden layers.
        synchronized_bn: share batch-norm statistics across replicas (needed with >1 replica; the
            resnet D has no batch norm).
        conditioning: "concat" (a label plane beside the image) or "projection" (Miyato & Koyama).
        norm: "batch" (batch norm after every conv but the first; dcgan only), "spectral" (spectral
            norm on every kernel, no batch norm) or "none".
        attention_resolution: 0, or the side (one of feature_sides(resolution)) after whose block a
            self-attention block goes.
        architecture: "dcgan" (the baseline's) or "resnet" (BigGAN-style residual blocks).
        channels: the resnet's base width c (None: RESNET_D_CHANNELS); must be None for "dcgan".
        class_strength: scale the class signal by a ClassStrength λ (see set_class_strength).
        minibatch_std: append the spread of each image's class in the batch (layers.ClassMinibatchStdDev)
            to the last feature map and mix it in with a 1×1 convolution, so D can reject a generator
            whose images of a class look alike.

    Returns:
        keras.Model named "discriminator": inputs [image [B, R, R, 3] float in [-1, 1], label [B] int32],
        output logit [B, 1] float32 (no sigmoid: the losses take logits).

    Raises:
        ValueError: an unknown resolution or option value.
    """
    _num_blocks(resolution)
    _check_choice("conditioning", conditioning, DISCRIMINATOR_CONDITIONINGS)
    _check_architecture(architecture, channels, RESNET_D_CHANNELS)
    if architecture == "resnet" and norm == "batch":
        raise ValueError(f"norm must be one of {RESNET_DISCRIMINATOR_NORMS} with architecture='resnet' (its "
                         f"discriminator has no batch norm), got 'batch'")
    _check_choice("norm", norm, DISCRIMINATOR_NORMS)
    _check_attention_resolution(attention_resolution, resolution)
    _check_choice("class_strength", class_strength, (False, True))
    spectral = norm == "spectral"
    dense = layers.SpectralDense if spectral else keras.layers.Dense
    conv = layers.SpectralConv2D if spectral else keras.layers.Conv2D

    def attend(x, side):
        if side == attention_resolution:
            x = layers.SelfAttention2D(spectral_norm=spectral, dtype=dtype)(x)
        return x

    image = keras.Input(shape=(resolution, resolution, 3), dtype="float32", name="image")
    label = keras.Input(shape=(), dtype="int32", name="label")
    x = _discriminator_input(image, label, resolution, num_classes, conditioning, dense, class_strength, dtype)
    if architecture == "resnet":
        widths = [m * (channels or RESNET_D_CHANNELS) for m in _RESNET_D_WIDTHS[resolution]]
        # D at 64: [c, 2c, 4c, 8c, 16c] at sides [32, 16, 8, 4, 4]; the last block does not pool.
        side = resolution
        for i, filters in enumerate(widths):
            pool = i < len(widths) - 1
            side //= 2 if pool else 1
            x = _down_block(x, filters, conv, dtype, first=i == 0, pool=pool)   # [B, side, side, filters]
            x = attend(x, side)
        x = keras.layers.ReLU(dtype=dtype)(x)                                   # [B, 4, 4, 16c]
    else:
        filters = list(reversed(_channels(resolution))) + [BASE_CHANNELS]
        sides = reversed(feature_sides(resolution))
        # D at 64: [64, 128, 256] at sides [32, 16, 8]; the first block has no batch norm.
        for i, (f, side) in enumerate(zip(filters, sides)):
            batch_norm = norm == "batch" and i > 0
            x = conv(f, KERNEL_SIZE, strides=2, padding="same", use_bias=not batch_norm, dtype=dtype)(x)
            if batch_norm:
                x = _batch_norm(dtype, synchronized_bn)(x)
            x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)             # [B, side, side, f]
            x = attend(x, side)
    if minibatch_std:
        channels_last = x.shape[-1]
        x = layers.ClassMinibatchStdDev(dtype=dtype)([x, label])               # [B, s, s, C + 1]
        x = conv(channels_last, 1, dtype=dtype)(x)                              # [B, s, s, C]
        x = (keras.layers.ReLU(dtype=dtype) if architecture == "resnet"
             else keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype))(x)
    if conditioning == "projection":
        logit = _projection_logit(x, label, num_classes, dense, spectral, class_strength)  # [B, 1]
    elif architecture == "resnet":
        features = layers.GlobalSumPooling2D(dtype="float32", name="features")(x)  # φ(x) [B, 16c]
        logit = dense(1, dtype="float32", name="logit")(features)               # [B, 1]
    else:
        x = keras.layers.Flatten(dtype=dtype)(x)                                # [B, 8·8·256]
        logit = dense(1, dtype="float32", name="logit")(x)                      # [B, 1]
    return keras.Model([image, label], logit, name="discriminator")


def _up_block(x, label, filters, normalize, conv, dtype):
    """The residual generator's block: [B, s, s, C] -> [B, 2s, 2s, filters]."""
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
    """The residual discriminator's block: [B, s, s, C] -> [B, s/2, s/2, filters] (s without pooling).

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


# ---------------------------------------------------------------------------------------------------
# Class-signal strength.


def _strength_layers(model):
    """Every ClassStrength in the model, nested ones (inside conditional batch norms) included."""
    # Keras 3 has no public recursive walk over sublayers; _flatten_layers is the one Keras itself uses.
    found = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, layers.ClassStrength)]
    if not found:
        raise ValueError(f"model {model.name!r} has no class strength: build it with class_strength=True")
    return found


def set_class_strength(model, value):
    """Sets λ, the class signal's strength, in every ClassStrength layer of a model.

    Works eagerly and inside a tf.function; under a tf.distribute strategy in cross-replica context
    (every copy takes the value) or in replica context (every copy takes the first replica's value).

    Args:
        model: a generator or discriminator built with class_strength=True.
        value: float or float32 scalar tensor; 0 = unconditional, 1 = fully conditional.

    Raises:
        ValueError: the model has no ClassStrength layer.
    """
    value = ops.cast(value, "float32")
    for layer in _strength_layers(model):
        layer.strength.assign(value)


def class_strength(model):
    """Reads λ (the value set_class_strength last gave every ClassStrength layer).

    Args:
        model: a generator or discriminator built with class_strength=True.

    Returns:
        float32 scalar tensor.

    Raises:
        ValueError: the model has no ClassStrength layer.
    """
    # keras.ops.convert_to_tensor hands a variable back as it is; TensorFlow's reads its value (under a
    # strategy in cross-replica context, the first replica's copy).
    return tf.convert_to_tensor(_strength_layers(model)[0].strength)
