"""Layers behind the networks' architecture options: spectral normalisation, conditional batch norm,
self-attention, the projection discriminator's sum pooling and the class-signal strength.

    from cgan.model import layers
    conv = layers.SpectralConv2D(64, 4, strides=2, padding="same")    # a Conv2D whose kernel is W / σ(W)
    y = conv(x, training=True)                  # training=True also advances σ's power iteration
    kernel = conv.normalized_kernel()           # the kernel the layer applies, σ ≈ 1
    h = layers.ConditionalBatchNormalization(num_classes=9)([x, labels])   # x [B, ..., C], labels [B]
    h = layers.SelfAttention2D()(x)             # x [B, H, W, C] -> [B, H, W, C]
    phi = layers.GlobalSumPooling2D()(x)        # [B, H, W, C] -> [B, C]
    y = layers.ClassStrength()(x)               # λ · x, λ a non-trainable float32 scalar (1 at first)

Spectral normalisation (Miyato et al. 2018) divides the kernel W, as a [-1, last axis] matrix, by σ(W)
from one power iteration per training call on a stored unit vector u: v = normalize(u Wᵀ);
u = normalize(v W); σ = v W uᵀ.
u and v are constants to the gradient and W stays the trainable parameter, never overwritten, so the
gradient flows through W / σ(W) as in the paper; training=False calls use the stored u as it is.
keras.layers.SpectralNormalization instead writes W / σ back into the kernel (the gradient skips σ)
and, as a wrapper, hides the wrapped layer from model.layers; the Spectral* classes here subclass the
layers they normalise.

Every layer computes in its dtype policy's compute dtype; the power iteration and the attention
softmax run in float32. All are registered for `keras.models.load_model(..., safe_mode=True)`.
"""

import keras
from keras import ops

PACKAGE = "cgan"


def _normalize(vector):
    """Scales a [1, N] float32 vector to unit L2 norm."""
    return vector * ops.rsqrt(ops.maximum(ops.sum(ops.square(vector)), 1e-12))


class _SpectralNorm:
    """Mixin for a Keras layer with a `kernel` (or `embeddings`): adds u and normalized_kernel()."""

    def __init__(self, *args, power_iterations=1, **kwargs):
        super().__init__(*args, **kwargs)
        if power_iterations < 1:
            raise ValueError(f"power_iterations must be at least 1, got {power_iterations}")
        self.power_iterations = power_iterations

    def build(self, input_shape):
        super().build(input_shape)
        self.singular_vector = self.add_weight(
            shape=(1, self._raw_kernel().shape[-1]), initializer=keras.initializers.RandomNormal(stddev=1.0),
            dtype="float32", trainable=False, autocast=False, name="singular_vector")

    def _raw_kernel(self):
        return self.kernel

    def normalized_kernel(self, training=False):
        """W / σ(W) in the layer's compute dtype (float32 outside a call).

        Args:
            training: advance the power iteration and store the new u first.

        Returns:
            a tensor shaped like the kernel.
        """
        # Inside a mixed-precision call the kernel reads as bfloat16/float16; σ is estimated in float32.
        kernel = ops.cast(self._raw_kernel(), "float32")
        matrix = ops.reshape(kernel, (-1, kernel.shape[-1]))                   # [M, N]
        u = _normalize(ops.convert_to_tensor(self.singular_vector))            # [1, N]
        if training:
            for _ in range(self.power_iterations):
                u = _normalize(ops.matmul(_normalize(ops.matmul(u, ops.transpose(matrix))), matrix))
            u = ops.stop_gradient(u)
            self.singular_vector.assign(u)
        v = ops.stop_gradient(_normalize(ops.matmul(u, ops.transpose(matrix))))  # [1, M]
        sigma = ops.sum(ops.matmul(v, matrix) * u)                             # scalar
        return ops.cast(kernel / sigma, self.compute_dtype)

    def _bias_and_activation(self, outputs):
        if getattr(self, "bias", None) is not None:
            outputs = ops.add(outputs, self.bias)     # channels_last: the bias broadcasts on the last axis
        if getattr(self, "activation", None) is not None:
            outputs = self.activation(outputs)
        return outputs

    # The Keras layers save only their kernel and bias; Layer's defaults save every variable, u included.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}


def _check_channels_last(layer):
    if layer.data_format != "channels_last":
        raise ValueError(f"{type(layer).__name__} supports data_format='channels_last' only")


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectralDense(_SpectralNorm, keras.layers.Dense):
    """keras.layers.Dense with a spectrally normalised kernel [in, units]."""

    def call(self, inputs, training=None):
        return self._bias_and_activation(ops.matmul(inputs, self.normalized_kernel(training)))


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectralConv2D(_SpectralNorm, keras.layers.Conv2D):
    """keras.layers.Conv2D with a spectrally normalised kernel [kh, kw, in, filters] (as [kh·kw·in, filters])."""

    def build(self, input_shape):
        _check_channels_last(self)
        super().build(input_shape)

    def call(self, inputs, training=None):
        return self._bias_and_activation(self.convolution_op(inputs, self.normalized_kernel(training)))


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectralConv2DTranspose(_SpectralNorm, keras.layers.Conv2DTranspose):
    """keras.layers.Conv2DTranspose with a spectrally normalised kernel [kh, kw, filters, in]
    (as [kh·kw·filters, in])."""

    def build(self, input_shape):
        _check_channels_last(self)
        super().build(input_shape)

    def call(self, inputs, training=None):
        outputs = ops.conv_transpose(inputs, self.normalized_kernel(training), strides=list(self.strides),
                                     padding=self.padding, output_padding=self.output_padding,
                                     dilation_rate=self.dilation_rate, data_format=self.data_format)
        return self._bias_and_activation(outputs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectralEmbedding(_SpectralNorm, keras.layers.Embedding):
    """keras.layers.Embedding whose table [input_dim, output_dim] is spectrally normalised."""

    def _raw_kernel(self):
        return self.embeddings

    def call(self, inputs, training=None):
        inputs = ops.cast(inputs, "int32")
        return ops.take(self.normalized_kernel(training), inputs, axis=0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConditionalBatchNormalization(keras.layers.Layer):
    """Batch norm whose gain and bias are looked up per class (Miyato & Koyama 2018, also BigGAN's).

    inputs [x [B, ..., C], label [B] int] -> gain[label] · BN(x) + bias[label], same shape as x.
    The tables [num_classes, C] start at gain 1 and bias 0, where the layer equals plain batch norm.

    Args:
        class_strength: scale the class-dependent part by a ClassStrength λ (the sublayer
            `strength_layer`): (λ · gain[label] + 1 − λ) · BN(x) + λ · bias[label]. λ = 1 is the
            conditional layer above, λ = 0 plain batch norm whatever the label.
    """

    def __init__(self, num_classes, momentum=0.99, epsilon=1e-3, synchronized=False, class_strength=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized
        self.class_strength = class_strength

    def build(self, input_shape):
        x_shape, _ = input_shape
        channels = x_shape[-1]
        self.normalization = keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon, center=False, scale=False,
            synchronized=self.synchronized, dtype=self.dtype_policy, name="normalization")
        self.normalization.build(x_shape)
        self.gain = self.add_weight(shape=(self.num_classes, channels), initializer="ones", name="gain")
        self.bias = self.add_weight(shape=(self.num_classes, channels), initializer="zeros", name="bias")
        if self.class_strength:
            self.strength_layer = ClassStrength(dtype=self.dtype_policy, name="class_strength")
            self.strength_layer.build(())

    def call(self, inputs, training=None):
        x, label = inputs
        normalized = self.normalization(x, training=training)
        label = ops.cast(label, "int32")
        # [B, C] -> [B, 1, ..., 1, C] so that it broadcasts over x's middle axes.
        shape = (-1,) + (1,) * (len(x.shape) - 2) + (x.shape[-1],)
        gain = ops.reshape(ops.take(self.gain, label, axis=0), shape)
        bias = ops.reshape(ops.take(self.bias, label, axis=0), shape)
        if self.class_strength:
            # λ·gain + (1 − λ) rather than 1 + λ·(gain − 1): exact at both ends, so λ = 1 reproduces the
            # conditional layer bit for bit.
            strength = ops.cast(self.strength_layer.strength, gain.dtype)
            gain = gain * strength + (1.0 - strength)
            bias = bias * strength
        return normalized * gain + bias

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "momentum": self.momentum,
                "epsilon": self.epsilon, "synchronized": self.synchronized, "class_strength": self.class_strength}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelfAttention2D(keras.layers.Layer):
    """SAGAN self-attention (Zhang et al. 2019): x + γ · o(softmax(q kᵀ) v), γ starting at 0.

    q, k, v are 1×1 convolutions to C/8 channels, o a 1×1 convolution back to C; the softmax runs over
    the H·W key positions in float32. With γ = 0 (its initial value) the layer is the identity.

    Args:
        spectral_norm: spectrally normalise q, k, v and o.
    """

    def __init__(self, spectral_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.spectral_norm = spectral_norm

    def build(self, input_shape):
        channels = input_shape[-1]
        inner = max(channels // 8, 1)
        conv = SpectralConv2D if self.spectral_norm else keras.layers.Conv2D

        def make(filters, name):
            layer = conv(filters, 1, use_bias=False, dtype=self.dtype_policy, name=name)
            layer.build(tuple(input_shape[:-1]) + (channels if name != "output" else inner,))
            return layer

        self.query = make(inner, "query")
        self.key = make(inner, "key")
        self.value = make(inner, "value")
        self.output_conv = make(channels, "output")
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def call(self, inputs, training=None):
        _, height, width, channels = inputs.shape
        positions = height * width
        inner = self.query.filters
        query = ops.reshape(self.query(inputs, training=training), (-1, positions, inner))   # [B, N, C/8]
        key = ops.reshape(self.key(inputs, training=training), (-1, positions, inner))       # [B, N, C/8]
        value = ops.reshape(self.value(inputs, training=training), (-1, positions, inner))   # [B, N, C/8]
        logits = ops.matmul(ops.cast(query, "float32"), ops.transpose(ops.cast(key, "float32"), (0, 2, 1)))
        attention = ops.cast(ops.softmax(logits, axis=-1), self.compute_dtype)               # [B, N, N]
        attended = ops.reshape(ops.matmul(attention, value), (-1, height, width, inner))     # [B, H, W, C/8]
        return inputs + self.gamma * self.output_conv(attended, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "spectral_norm": self.spectral_norm}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GlobalSumPooling2D(keras.layers.Layer):
    """[B, H, W, C] -> [B, C]: the sum over positions (the projection discriminator's φ)."""

    def call(self, inputs):
        return ops.sum(inputs, axis=(1, 2))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassMinibatchStdDev(keras.layers.Layer):
    """[[B, H, W, C], labels [B]] -> [B, H, W, C + 1]: appends the spread of each image's class in the batch.

    A conditional variant of the minibatch standard deviation of Karras et al. (2018, ProGAN; kept
    in StyleGAN2-ADA). For image i, the standard deviation of every feature over the images of the
    batch that share its label is averaged into one number, which becomes a constant extra channel
    of image i. A generator that ignores its noise within a class (conditional mode collapse) gives
    values near 0 that D learns to reject. The plain variant, over groups of the batch, cannot see
    that collapse: a batch of several classes is spread out even when each class is one picture.
    D sees real and generated batches with the same labels (cgan.training.step), so the two get the same
    grouping; a class that occurs once in the batch gets 0 in both. Computed in float32.
    """

    def call(self, inputs):
        features, labels = inputs
        x = ops.cast(features, "float32")                                     # [B, H, W, C]
        flat = ops.reshape(x, (ops.shape(x)[0], -1))                          # [B, F]
        labels = ops.reshape(labels, (-1,))
        same = ops.cast(ops.equal(labels[:, None], labels[None, :]), "float32")   # [B, B]
        same = same / ops.sum(same, axis=1, keepdims=True)                    # rows: mean over i's class
        mean = ops.matmul(same, flat)                                         # [B, F]
        variance = ops.matmul(same, ops.square(flat)) - ops.square(mean)      # [B, F]
        spread = ops.mean(ops.sqrt(ops.maximum(variance, 0.0) + 1e-8), axis=1)   # [B]
        plane = ops.ones_like(x[..., :1]) * spread[:, None, None, None]       # [B, H, W, 1]
        return ops.cast(ops.concatenate([x, plane], axis=-1), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        features_shape = input_shape[0]
        return tuple(features_shape[:-1]) + (features_shape[-1] + 1,)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassStrength(keras.layers.Layer):
    """x -> λ · x, with λ a non-trainable float32 scalar starting at 1: how much of the class signal
    passes (transitional training, Shahbazi et al. 2022, ramps λ from 0 to 1).

    Set λ with cgan.model.networks.set_class_strength, which finds every ClassStrength of a model. The
    variable is mirrored with aggregation "only_first_replica", so it may be assigned in replica context
    under a tf.distribute strategy (all replicas take the first one's value) as well as in cross-replica
    context.
    """

    def build(self, input_shape):
        self.strength = self.add_weight(shape=(), initializer="ones", dtype="float32", trainable=False,
                                        autocast=False, aggregation="only_first_replica", name="strength")

    def call(self, inputs):
        return inputs * ops.cast(self.strength, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape
