"""How both architectures (cgan.model.dcgan, cgan.model.resnet) take the label, and the class strength λ.

    x = generator_input(z, label, num_classes, "concat", class_strength=False, dtype="float32")  # [B, latent_dim + 50]
    normalize = generator_norm("cbn", num_classes, synchronized=False, class_strength=False, dtype="float32")
    h = normalize(h, label)                     # conditional (cbn) or plain (concat) batch norm, shape of h
    x = discriminator_input(image, label, 64, num_classes, "concat", keras.layers.Dense, False, "float32")
    logit = projection_logit(h, label, num_classes, keras.layers.Dense, spectral=False, class_strength=False)
    set_class_strength(generator, 0.0)          # eagerly or in a tf.function; the label then has no effect
    class_strength(generator)                   # float32 scalar tensor, 0.0

Decisions:
- G "concat": z ⊕ Embedding(label, 50) goes into G's first Dense. G "cbn": z alone; every batch norm
  of the blocks is conditional (Miyato & Koyama 2018), starting at gain 1 and bias 0, so the label has
  no effect at initialisation.
- D "concat": a label plane Embedding(label, 50) -> Dense(R·R) -> [R, R, 1] beside the image. D
  "projection": no plane; logit = ψ(φ(x)) + <E(label), φ(x)>, φ the sum over positions (same paper).
- D's class minibatch std (layers.ClassMinibatchStdDev) is mixed into the last features by a 1×1 conv.
- λ (a layers.ClassStrength, 1 at first) scales the embedding or the plane (concat), the class-dependent
  part of every conditional batch norm (cbn) or the projection term. λ = 1 is the network without the
  option bit for bit; without the option no layer is added, so the model and its checkpoint keys stay
  those from before the option existed.
- set_class_strength finds the λ layers by walking the public `model.layers` (and each conditional batch
  norm's `strength_layer`), so models loaded from .keras files and clones work like freshly built ones.
"""

import keras
import tensorflow as tf
from keras import ops

from cgan.model import layers

EMBEDDING_DIM = 50
BN_MOMENTUM = 0.9      # Keras' default 0.99 lags far behind a GAN's fast-moving statistics
# Label embeddings start at the scale of z ~ N(0, 1). Keras' default (uniform ±0.05) makes the label
# ~20× weaker than the noise at the start, and Adam moves each entry by about the learning rate per
# step, so the class signal takes thousands of steps just to reach the noise's scale.
EMBEDDING_STDDEV = 1.0


def label_embedding(num_classes, dtype):
    """The concat conditioning's Embedding(label, EMBEDDING_DIM), named "label_embedding"."""
    initializer = keras.initializers.RandomNormal(stddev=EMBEDDING_STDDEV)
    return keras.layers.Embedding(num_classes, EMBEDDING_DIM, embeddings_initializer=initializer, dtype=dtype,
                                  name="label_embedding")


def batch_norm(dtype, synchronized):
    """A plain BatchNormalization at BN_MOMENTUM."""
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=synchronized, dtype=dtype)


def strength(class_strength, dtype):
    """λ · x where the option is on, x itself where it is off (no layer, so no change to the model)."""
    if class_strength:
        return layers.ClassStrength(dtype=dtype, name="class_strength")
    return lambda x: x


def generator_inputs(latent_dim):
    """G's named inputs in both architectures (samplers feed them by name): z [B, latent_dim], label [B]."""
    return (keras.Input(shape=(latent_dim,), dtype="float32", name="z"),
            keras.Input(shape=(), dtype="int32", name="label"))


def discriminator_inputs(resolution, pack=1):
    """D's named inputs in both architectures: image [B, R, R, 3 · pack] in [-1, 1] (pack images of one class
    stacked channel-wise), label [B]."""
    return (keras.Input(shape=(resolution, resolution, 3 * pack), dtype="float32", name="image"),
            keras.Input(shape=(), dtype="int32", name="label"))


def generator_input(z, label, num_classes, conditioning, class_strength, dtype, unconditional=False):
    """What goes into G's first Dense: z ⊕ λ·embedding(label) (concat) or z alone (cbn, or the class-free layout
    layers of `unconditional`, where the class enters later through `class_planes`)."""
    if conditioning == "concat" and not unconditional:
        embedded = label_embedding(num_classes, dtype)(label)                   # [B, 50]
        embedded = strength(class_strength, dtype)(embedded)
        return keras.layers.Concatenate(dtype=dtype)([z, embedded])             # [B, latent_dim + 50]
    return z                                                                    # [B, latent_dim]


def class_planes(x, label, num_classes, conditioning, class_strength, dtype):
    """Where G's class-free layout layers end (x [B, s, s, C]): concat adds λ·embedding(label) as planes,
    [B, s, s, C + 50]; cbn returns x (the conditional batch norms after it take the class)."""
    if conditioning != "concat":
        return x
    side = x.shape[1]
    embedded = label_embedding(num_classes, dtype)(label)                       # [B, 50]
    embedded = strength(class_strength, dtype)(embedded)
    embedded = keras.layers.Reshape((1, 1, EMBEDDING_DIM), dtype=dtype)(embedded)
    planes = keras.layers.UpSampling2D(side, dtype=dtype)(embedded)             # [B, s, s, 50]
    return keras.layers.Concatenate(dtype=dtype)([x, planes])


def generator_norm(conditioning, num_classes, synchronized, class_strength, dtype, unconditional_below=0):
    """G's batch norm as a function of (x, label): conditional (cbn) or plain (concat, and with cbn on maps of
    side ≤ unconditional_below, G's class-free layout layers)."""
    def normalize(x, label):
        side = x.shape[1] if len(x.shape) == 4 else 0      # the first Dense's output: side 0, before its reshape
        if conditioning == "cbn" and not (unconditional_below and side <= unconditional_below):
            return layers.ConditionalBatchNormalization(num_classes, momentum=BN_MOMENTUM, synchronized=synchronized,
                                                        class_strength=class_strength, dtype=dtype)([x, label])
        return batch_norm(dtype, synchronized)(x)
    return normalize


def discriminator_input(image, label, resolution, num_classes, conditioning, dense, class_strength, dtype):
    """D's input: image ⊕ λ·label plane (concat) or the image alone (projection)."""
    if conditioning == "concat":
        plane = label_embedding(num_classes, dtype)(label)                      # [B, 50]
        plane = dense(resolution * resolution, dtype=dtype)(plane)              # [B, R·R]
        plane = strength(class_strength, dtype)(plane)
        plane = keras.layers.Reshape((resolution, resolution, 1), dtype=dtype)(plane)  # [B, R, R, 1]
        return keras.layers.Concatenate(dtype=dtype)([image, plane])            # [B, R, R, 4]
    return image                                                                # [B, R, R, 3]


def class_minibatch_std(x, label, conv, activation, dtype):
    """D's last features x [B, s, s, C] with the spread of each image's class mixed in; same shape."""
    channels = x.shape[-1]
    x = layers.ClassMinibatchStdDev(dtype=dtype)([x, label])                    # [B, s, s, C + 1]
    x = conv(channels, 1, dtype=dtype)(x)                                       # [B, s, s, C]
    return activation()(x)


def projection_logit(x, label, num_classes, dense, spectral, class_strength):
    """ψ(φ(x)) + λ·<E(label), φ(x)> from D's last features x [B, H, W, C]; float32 [B, 1]."""
    features = layers.GlobalSumPooling2D(dtype="float32", name="features")(x)    # φ(x) [B, C]
    unconditional = dense(1, dtype="float32", name="unconditional_logit")(features)  # ψ(φ) [B, 1]
    embedding = layers.SpectralEmbedding if spectral else keras.layers.Embedding
    embedded = embedding(num_classes, x.shape[-1], embeddings_initializer="glorot_uniform",
                         dtype="float32", name="projection_embedding")(label)   # [B, C]
    projection = keras.layers.Dot(axes=1, dtype="float32", name="projection")([embedded, features])  # [B, 1]
    projection = strength(class_strength, "float32")(projection)
    return keras.layers.Add(dtype="float32", name="logit")([unconditional, projection])  # [B, 1]


# ---------------------------------------------------------------------------------------------------
# Class-signal strength.


def strength_layers(model):
    """Every ClassStrength of a model: its own layers', its conditional batch norms' and nested models'.

    Raises:
        ValueError: the model has none (it was built without class_strength=True).
    """
    found = _find_strength_layers(model)
    if not found:
        raise ValueError(f"model {model.name!r} has no class strength: build it with class_strength=True")
    return found


def _find_strength_layers(model):
    found = []
    for layer in model.layers:
        if isinstance(layer, layers.ClassStrength):
            found.append(layer)
        elif isinstance(layer, layers.ConditionalBatchNormalization) and layer.class_strength:
            found.append(layer.strength_layer)
        elif isinstance(layer, keras.Model):
            found += _find_strength_layers(layer)
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
    for layer in strength_layers(model):
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
    return tf.convert_to_tensor(strength_layers(model)[0].strength)
