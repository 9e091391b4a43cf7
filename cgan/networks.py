"""The seed's conditional DCGAN: generator and discriminator, at 64, 128 or 256 pixels.

    from cgan import networks
    generator = networks.build_generator(resolution=64, latent_dim=100, num_classes=9)
    images = generator([z, labels])              # z [B, 100] float, labels [B] int -> [B, 64, 64, 3] in [-1, 1]
    discriminator = networks.build_discriminator(resolution=64, num_classes=9)
    logits = discriminator([images, labels])     # [B, 1] float32

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

`dtype` is a Keras dtype policy name ("float32", "mixed_float16", "mixed_bfloat16"). The generator's
tanh and the discriminator's logit are always float32, so images and losses never leave float32.
"""

import keras

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


def _label_embedding(num_classes, dtype):
    initializer = keras.initializers.RandomNormal(stddev=EMBEDDING_STDDEV)
    return keras.layers.Embedding(num_classes, EMBEDDING_DIM, embeddings_initializer=initializer, dtype=dtype,
                                  name="label_embedding")


def _batch_norm(dtype, synchronized):
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=synchronized, dtype=dtype)


def build_generator(resolution, latent_dim, num_classes, dtype="float32", synchronized_bn=False):
    """Builds the conditional generator.

    Args:
        resolution: output side in pixels, one of RESOLUTIONS.
        latent_dim: size of the noise vector z.
        num_classes: number of labels the embedding accepts.
        dtype: Keras dtype policy name for the hidden layers.
        synchronized_bn: share batch-norm statistics across replicas (needed with >1 replica).

    Returns:
        keras.Model named "generator": inputs [z [B, latent_dim] float32, label [B] int32],
        output [B, resolution, resolution, 3] float32 in [-1, 1].
    """
    z = keras.Input(shape=(latent_dim,), dtype="float32", name="z")
    label = keras.Input(shape=(), dtype="int32", name="label")
    embedded = _label_embedding(num_classes, dtype)(label)                      # [B, 50]
    x = keras.layers.Concatenate(dtype=dtype)([z, embedded])                    # [B, latent_dim + 50]
    x = keras.layers.Dense(BASE_SIZE * BASE_SIZE * BASE_CHANNELS, use_bias=False, dtype=dtype)(x)
    x = _batch_norm(dtype, synchronized_bn)(x)
    x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)
    x = keras.layers.Reshape((BASE_SIZE, BASE_SIZE, BASE_CHANNELS), dtype=dtype)(x)  # [B, 8, 8, 256]
    for filters in _channels(resolution):
        x = keras.layers.Conv2DTranspose(filters, KERNEL_SIZE, strides=2, padding="same", use_bias=False,
                                         dtype=dtype)(x)
        x = _batch_norm(dtype, synchronized_bn)(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)
    x = keras.layers.Conv2DTranspose(3, KERNEL_SIZE, strides=2, padding="same", dtype=dtype)(x)
    image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)   # [B, R, R, 3]
    return keras.Model([z, label], image, name="generator")


def build_discriminator(resolution, num_classes, dtype="float32", synchronized_bn=False):
    """Builds the conditional discriminator.

    Args:
        resolution: input side in pixels, one of RESOLUTIONS.
        num_classes: number of labels the embedding accepts.
        dtype: Keras dtype policy name for the hidden layers.
        synchronized_bn: share batch-norm statistics across replicas (needed with >1 replica).

    Returns:
        keras.Model named "discriminator": inputs [image [B, R, R, 3] float in [-1, 1], label [B] int32],
        output logit [B, 1] float32 (no sigmoid: the losses take logits).
    """
    image = keras.Input(shape=(resolution, resolution, 3), dtype="float32", name="image")
    label = keras.Input(shape=(), dtype="int32", name="label")
    plane = _label_embedding(num_classes, dtype)(label)                         # [B, 50]
    plane = keras.layers.Dense(resolution * resolution, dtype=dtype)(plane)
    plane = keras.layers.Reshape((resolution, resolution, 1), dtype=dtype)(plane)  # [B, R, R, 1]
    x = keras.layers.Concatenate(dtype=dtype)([image, plane])                   # [B, R, R, 4]
    filters = list(reversed(_channels(resolution))) + [BASE_CHANNELS]
    # D at 64: [64, 128, 256]; the first block has no batch norm.
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, KERNEL_SIZE, strides=2, padding="same", use_bias=i == 0, dtype=dtype)(x)
        if i > 0:
            x = _batch_norm(dtype, synchronized_bn)(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)
    x = keras.layers.Flatten(dtype=dtype)(x)                                    # [B, 8·8·256]
    logit = keras.layers.Dense(1, dtype="float32", name="logit")(x)             # [B, 1]
    return keras.Model([image, label], logit, name="discriminator")
