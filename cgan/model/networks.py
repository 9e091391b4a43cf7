"""The conditional generator and discriminator at 64, 128 or 256 pixels: the baseline's DCGAN (the
default, cgan.model.dcgan) or BigGAN-style residual networks (cgan.model.resnet), taking the label as
cgan.model.conditioning describes.

    from cgan.model import networks
    generator = networks.build_generator(resolution=64, latent_dim=100, num_classes=9)
    images = generator([z, labels])              # z [B, 100] float, labels [B] int -> [B, 64, 64, 3] in [-1, 1]
    discriminator = networks.build_discriminator(resolution=64, num_classes=9)
    logits = discriminator([images, labels])     # [B, 1] float32
    generator = networks.build_generator(64, 100, 9, architecture="resnet", conditioning="cbn", class_strength=True)
    networks.set_class_strength(generator, 0.0)  # eagerly or in a tf.function; the label has no effect
    features = networks.discriminator_features(discriminator)([images, labels])   # [B, 16, 16, C], D's block
Options (every default builds the baseline's DCGAN layer for layer; cgan.core.config.TrainConfig
checks their values and combinations once, the builders do not):
    G conditioning        "concat" (z ⊕ label embedding) or "cbn" (conditional batch norm)
    D conditioning        "concat" (a label plane beside the image) or "projection"
    G spectral_norm       spectral norm of G's kernels (layers.Spectral*); its batch norms stay
    D norm                "batch" (dcgan only), "spectral" (every kernel; no batch norm) or "none"
    attention_resolution  a SAGAN block (γ = 0 at first) after the block of this side; 0: none
    channels              the resnet's base width c (None: RESNET_G_CHANNELS, RESNET_D_CHANNELS)
    class_strength        a λ scaling the class signal (set_class_strength); off: no extra layer
    minibatch_std         D sees the spread of each image's class in the batch; unconditional_below:
                          G takes no class up to this side (cgan.model.layout)
`dtype` is a Keras dtype policy name; G's tanh and D's logit stay float32. Importing this module
registers the custom layers that keras.models.load_model needs.
"""

# Re-exported: the public names of the networks, wherever they are defined. The attention sides are
# the config's, so that the rule TrainConfig checks and the networks' sides have one definition.
from cgan.core.config import DATASET_RESOLUTIONS, feature_sides  # noqa: F401
import keras

from cgan.model import dcgan, resnet
from cgan.model.conditioning import BN_MOMENTUM, EMBEDDING_DIM, EMBEDDING_STDDEV  # noqa: F401
from cgan.model.conditioning import class_strength, set_class_strength  # noqa: F401
from cgan.model.dcgan import BASE_CHANNELS, BASE_SIZE, KERNEL_SIZE, LEAKY_SLOPE  # noqa: F401

RESOLUTIONS = DATASET_RESOLUTIONS
RESNET_G_CHANNELS = resnet.G_CHANNELS
RESNET_D_CHANNELS = resnet.D_CHANNELS
_ARCHITECTURES = {"dcgan": dcgan, "resnet": resnet}   # a name not listed is a KeyError
FEATURE_SIDE = 16     # D's mid-level features (discriminator_features): the side of the structure maps


def build_generator(resolution, latent_dim, num_classes, dtype="float32", synchronized_bn=False,
                    conditioning="concat", spectral_norm=False, attention_resolution=0, architecture="dcgan",
                    channels=None, class_strength=False, unconditional_below=0):
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
        channels: the resnet's base width c (None: RESNET_G_CHANNELS); None for "dcgan".
        class_strength: scale the class signal by a ClassStrength λ (see set_class_strength).
        unconditional_below: 0, or the side (one of feature_sides(resolution) below resolution / 2) up to
            which G's layers take no class (cgan.model.layout); the features there are marked.

    Returns:
        keras.Model named "generator": inputs [z [B, latent_dim] float32, label [B] int32],
        output [B, resolution, resolution, 3] float32 in [-1, 1].

    Raises:
        KeyError: an unknown architecture or resolution (TrainConfig checks the other options).
    """
    return _ARCHITECTURES[architecture].build_generator(
        resolution, latent_dim, num_classes, dtype=dtype, synchronized_bn=synchronized_bn,
        conditioning=conditioning, spectral_norm=spectral_norm, attention_resolution=attention_resolution,
        class_strength=class_strength, unconditional_below=unconditional_below, **_width(channels))


def build_discriminator(resolution, num_classes, dtype="float32", synchronized_bn=False,
                        conditioning="concat", norm="batch", attention_resolution=0, architecture="dcgan",
                        channels=None, class_strength=False, minibatch_std=False, pack=1):
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
        channels: the resnet's base width c (None: RESNET_D_CHANNELS); None for "dcgan".
        class_strength: scale the class signal by a ClassStrength λ (see set_class_strength).
        minibatch_std: append the spread of each image's class in the batch (layers.ClassMinibatchStdDev)
            to the last feature map and mix it in with a 1×1 convolution, so D can reject a generator
            whose images of a class look alike.
        pack: images of one class judged together, stacked channel-wise (PacGAN); 1 = each alone.

    Returns:
        keras.Model named "discriminator": inputs [image [B, R, R, 3 · pack] float in [-1, 1], label [B] int32],
        output logit [B, 1] float32 (no sigmoid: the losses take logits).

    Raises:
        KeyError: an unknown architecture or resolution (TrainConfig checks the other options).
    """
    return _ARCHITECTURES[architecture].build_discriminator(
        resolution, num_classes, dtype=dtype, synchronized_bn=synchronized_bn, conditioning=conditioning,
        norm=norm, attention_resolution=attention_resolution, class_strength=class_strength,
        minibatch_std=minibatch_std, pack=pack, **_width(channels))


def discriminator_features(discriminator, side=FEATURE_SIDE):
    """A model sharing `discriminator`'s layers: [image, label] -> D's block output at `side`, [B, s, s, C].

    The block output is the first layer whose map has that side and that ends a block: the DCGAN's
    LeakyReLU, the residual network's Add (the layers keep their default names, so that the networks
    stay those of earlier versions).

    Raises:
        ValueError: D has no block reaching that side.
    """
    for layer in discriminator.layers:
        shape = layer.output.shape
        if len(shape) == 4 and shape[1] == side and isinstance(layer, (keras.layers.LeakyReLU, keras.layers.Add)):
            return keras.Model(discriminator.inputs, layer.output, name=f"discriminator_features_{side}")
    raise ValueError(f"discriminator {discriminator.name!r} has no block output of side {side}")


def _width(channels):
    # Only the resnet builders take a width; passing one to the dcgan's is a TypeError.
    return {} if channels is None else {"channels": channels}
