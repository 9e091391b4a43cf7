"""The seed's conditional DCGAN: generator and discriminator, at 64, 128 or 256 pixels, with optional
architecture changes (conditional batch norm, projection, spectral norm, self-attention).

    from cgan import networks
    generator = networks.build_generator(resolution=64, latent_dim=100, num_classes=9)
    images = generator([z, labels])              # z [B, 100] float, labels [B] int -> [B, 64, 64, 3] in [-1, 1]
    discriminator = networks.build_discriminator(resolution=64, num_classes=9)
    logits = discriminator([images, labels])     # [B, 1] float32

    # SAGAN/BigGAN-style options; the inputs and outputs stay the same.
    generator = networks.build_generator(64, 100, 9, conditioning="cbn", spectral_norm=True,
                                         attention_resolution=32)
    discriminator = networks.build_discriminator(64, 9, conditioning="projection", norm="spectral",
                                                 attention_resolution=32)

Architecture (the seed's, kernel 4, stride 2, 'same' padding everywhere):

    G: [z ⊕ Embedding(label, 50)] -> Dense(8·8·256) + BN + LeakyReLU(0.2) -> reshape [8, 8, 256]
       -> Conv2DTranspose(128) + BN + LReLU [16²] -> Conv2DTranspose(64) + BN + LReLU [32²]
       -> Conv2DTranspose(3) + tanh [64²]
    D: [image ⊕ label plane (Embedding(label, 50) -> Dense(R·R) -> [R, R, 1])]
       -> Conv2D(64) + LReLU [32²] -> Conv2D(128) + BN + LReLU [16²] -> Conv2D(256) + BN + LReLU [8²]
       -> Flatten -> Dense(1) (float32 logit)

Each doubling of the resolution adds one block on the outside of both networks with half the
channels of its neighbour (G at 128: 256 -> 128 -> 64 -> 32 -> 3; D at 128: 32 -> 64 -> 128 -> 256),
so the 8×8×256 core is the same at every size.

Options (every default builds the seed network above, layer for layer):

    G conditioning="cbn"        z alone goes into the Dense; every BN of G becomes conditional batch
                                norm with a per-class gain and bias (Miyato & Koyama 2018), starting
                                at 1 and 0, so at initialisation the label has no effect yet.
    G spectral_norm=True        spectral normalisation of G's Dense and Conv2DTranspose kernels (and
                                of the attention block's convolutions); the batch norms stay.
    D conditioning="projection" no label plane: logit = ψ(φ(x)) + <Embedding(label, 256), φ(x)>, with
                                φ(x) the sum over positions of the last [8, 8, 256] features [B, 256]
                                and ψ a Dense(1) (Miyato & Koyama 2018). With norm="batch" the sum
                                over 64 positions starts the logits at tens; with "spectral" or
                                "none" at a few units.
    D norm="spectral"           spectral normalisation of every Conv2D and Dense (label plane,
                                logit, attention) and of the projection embedding; no batch norm.
    D norm="none"               neither. Without batch norm every conv has a bias.
    attention_resolution=S      a SAGAN self-attention block (Zhang et al. 2019) after the block whose
                                output has side S, one of the feature-map sides 8, 16, ..., R/2
                                (0: none). Its γ starts at 0, so it begins as the identity.

The layers behind the options live in cgan.layers; importing this module registers them, which
keras.models.load_model needs for models built with an option on.

`dtype` is a Keras dtype policy name ("float32", "mixed_float16", "mixed_bfloat16"). The generator's
tanh and the discriminator's logit are always float32, so images and losses never leave float32.
"""

import keras

from cgan import layers
from cgan.config import DISCRIMINATOR_CONDITIONINGS, DISCRIMINATOR_NORMS, GENERATOR_CONDITIONINGS

RESOLUTIONS = (64, 128, 256)
EMBEDDING_DIM = 50
BASE_SIZE = 8          # spatial size of the generator's first feature map
BASE_CHANNELS = 256    # channels at BASE_SIZE, in both networks
KERNEL_SIZE = 4
LEAKY_SLOPE = 0.2
BN_MOMENTUM = 0.9      # Keras' default 0.99 lags far behind a GAN's fast-moving statistics
# Label embeddings start at the scale of z ~ N(0, 1). Keras' default (uniform ±0.05) makes the label
# ~20× weaker than the noise at the start, and Adam moves each entry by about the learning rate per
# step, so the class signal takes thousands of steps just to reach the noise's scale.
EMBEDDING_STDDEV = 1.0


def _num_blocks(resolution):
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
    return {64: 3, 128: 4, 256: 5}[resolution]


def _channels(resolution):
    """Channels of the feature maps at 2·BASE_SIZE, 4·BASE_SIZE, ... up to resolution/2."""
    # G at 64: [128, 64]; at 128: [128, 64, 32]; at 256: [128, 64, 32, 16].
    return [BASE_CHANNELS >> (i + 1) for i in range(_num_blocks(resolution) - 1)]


def feature_sides(resolution):
    """Sides of both networks' hidden feature maps, (8, 16, ..., resolution/2): where attention may go."""
    return tuple(BASE_SIZE << i for i in range(_num_blocks(resolution)))


def _check_choice(option, value, choices):
    if not isinstance(value, type(choices[0])) or value not in choices:
        raise ValueError(f"{option} must be one of {choices}, got {value!r}")


def _check_attention_resolution(value, resolution):
    sides = feature_sides(resolution)
    if isinstance(value, bool) or value not in (0,) + sides:
        raise ValueError(f"attention_resolution must be 0 (no attention) or one of the feature-map sides "
                         f"{sides} at resolution {resolution}, got {value!r}")


def _label_embedding(num_classes, dtype):
    initializer = keras.initializers.RandomNormal(stddev=EMBEDDING_STDDEV)
    return keras.layers.Embedding(num_classes, EMBEDDING_DIM, embeddings_initializer=initializer, dtype=dtype,
                                  name="label_embedding")


def _batch_norm(dtype, synchronized):
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=synchronized, dtype=dtype)


def build_generator(resolution, latent_dim, num_classes, dtype="float32", synchronized_bn=False,
                    conditioning="concat", spectral_norm=False, attention_resolution=0):
    """Builds the conditional generator.

    Args:
        resolution: output side in pixels, one of RESOLUTIONS.
        latent_dim: size of the noise vector z.
        num_classes: number of labels the embedding accepts.
        dtype: Keras dtype policy name for the hidden layers.
        synchronized_bn: share batch-norm statistics across replicas (needed with >1 replica).
        conditioning: "concat" (z ⊕ label embedding into the Dense) or "cbn" (conditional batch norm).
        spectral_norm: spectrally normalise the Dense and Conv2DTranspose kernels.
        attention_resolution: 0, or the side (one of feature_sides(resolution)) after whose block a
            self-attention block goes.

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
    dense = layers.SpectralDense if spectral_norm else keras.layers.Dense
    conv_transpose = layers.SpectralConv2DTranspose if spectral_norm else keras.layers.Conv2DTranspose

    def normalize(x):
        if conditioning == "cbn":
            return layers.ConditionalBatchNormalization(num_classes, momentum=BN_MOMENTUM,
                                                        synchronized=synchronized_bn, dtype=dtype)([x, label])
        return _batch_norm(dtype, synchronized_bn)(x)

    def attend(x, side):
        if side == attention_resolution:
            x = layers.SelfAttention2D(spectral_norm=spectral_norm, dtype=dtype)(x)
        return x

    z = keras.Input(shape=(latent_dim,), dtype="float32", name="z")
    label = keras.Input(shape=(), dtype="int32", name="label")
    if conditioning == "concat":
        embedded = _label_embedding(num_classes, dtype)(label)                  # [B, 50]
        x = keras.layers.Concatenate(dtype=dtype)([z, embedded])                # [B, latent_dim + 50]
    else:
        x = z                                                                   # [B, latent_dim]
    x = dense(BASE_SIZE * BASE_SIZE * BASE_CHANNELS, use_bias=False, dtype=dtype)(x)
    x = normalize(x)
    x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)
    x = keras.layers.Reshape((BASE_SIZE, BASE_SIZE, BASE_CHANNELS), dtype=dtype)(x)  # [B, 8, 8, 256]
    x = attend(x, BASE_SIZE)
    for filters, side in zip(_channels(resolution), feature_sides(resolution)[1:]):
        x = conv_transpose(filters, KERNEL_SIZE, strides=2, padding="same", use_bias=False, dtype=dtype)(x)
        x = normalize(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)                 # [B, side, side, filters]
        x = attend(x, side)
    x = conv_transpose(3, KERNEL_SIZE, strides=2, padding="same", dtype=dtype)(x)
    image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)   # [B, R, R, 3]
    return keras.Model([z, label], image, name="generator")


def build_discriminator(resolution, num_classes, dtype="float32", synchronized_bn=False,
                        conditioning="concat", norm="batch", attention_resolution=0):
    """Builds the conditional discriminator.

    Args:
        resolution: input side in pixels, one of RESOLUTIONS.
        num_classes: number of labels the embedding accepts.
        dtype: Keras dtype policy name for the hidden layers.
        synchronized_bn: share batch-norm statistics across replicas (needed with >1 replica).
        conditioning: "concat" (a label plane beside the image) or "projection" (Miyato & Koyama).
        norm: "batch" (batch norm after every conv but the first), "spectral" (spectral norm on every
            kernel, no batch norm) or "none".
        attention_resolution: 0, or the side (one of feature_sides(resolution)) after whose block a
            self-attention block goes.

    Returns:
        keras.Model named "discriminator": inputs [image [B, R, R, 3] float in [-1, 1], label [B] int32],
        output logit [B, 1] float32 (no sigmoid: the losses take logits).

    Raises:
        ValueError: an unknown resolution or option value.
    """
    _num_blocks(resolution)
    _check_choice("conditioning", conditioning, DISCRIMINATOR_CONDITIONINGS)
    _check_choice("norm", norm, DISCRIMINATOR_NORMS)
    _check_attention_resolution(attention_resolution, resolution)
    spectral = norm == "spectral"
    dense = layers.SpectralDense if spectral else keras.layers.Dense
    conv = layers.SpectralConv2D if spectral else keras.layers.Conv2D

    image = keras.Input(shape=(resolution, resolution, 3), dtype="float32", name="image")
    label = keras.Input(shape=(), dtype="int32", name="label")
    if conditioning == "concat":
        plane = _label_embedding(num_classes, dtype)(label)                     # [B, 50]
        plane = dense(resolution * resolution, dtype=dtype)(plane)
        plane = keras.layers.Reshape((resolution, resolution, 1), dtype=dtype)(plane)  # [B, R, R, 1]
        x = keras.layers.Concatenate(dtype=dtype)([image, plane])               # [B, R, R, 4]
    else:
        x = image                                                               # [B, R, R, 3]
    filters = list(reversed(_channels(resolution))) + [BASE_CHANNELS]
    sides = reversed(feature_sides(resolution))
    # D at 64: [64, 128, 256] at sides [32, 16, 8]; the first block has no batch norm.
    for i, (f, side) in enumerate(zip(filters, sides)):
        batch_norm = norm == "batch" and i > 0
        x = conv(f, KERNEL_SIZE, strides=2, padding="same", use_bias=not batch_norm, dtype=dtype)(x)
        if batch_norm:
            x = _batch_norm(dtype, synchronized_bn)(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)                 # [B, side, side, f]
        if side == attention_resolution:
            x = layers.SelfAttention2D(spectral_norm=spectral, dtype=dtype)(x)
    if conditioning == "concat":
        x = keras.layers.Flatten(dtype=dtype)(x)                                # [B, 8·8·256]
        logit = dense(1, dtype="float32", name="logit")(x)                      # [B, 1]
    else:
        features = layers.GlobalSumPooling2D(dtype="float32", name="features")(x)   # φ(x) [B, 256]
        unconditional = dense(1, dtype="float32", name="unconditional_logit")(features)  # ψ(φ) [B, 1]
        embedding = layers.SpectralEmbedding if spectral else keras.layers.Embedding
        embedded = embedding(num_classes, BASE_CHANNELS, embeddings_initializer="glorot_uniform",
                             dtype="float32", name="projection_embedding")(label)  # [B, 256]
        projection = keras.layers.Dot(axes=1, dtype="float32", name="projection")([embedded, features])
        logit = keras.layers.Add(dtype="float32", name="logit")([unconditional, projection])  # [B, 1]
    return keras.Model([image, label], logit, name="discriminator")
