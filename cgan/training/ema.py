"""An exponential moving average (EMA) of the generator's weights, the network to sample from.

    with strategy.scope():                                   # the scope the generator was built in
        generator = networks.build_generator(64, latent_dim=100, num_classes=9, dtype=policy)
        generator_ema = ema.GeneratorEMA(generator, decay=0.999, start_step=1000)
    checkpoint = tf.train.Checkpoint(generator=generator, ema_generator=generator_ema.model, ...)

    # inside the tf.function, after each generator update (replica or cross-replica context):
    generator_ema.update(step)                               # step: int64 scalar, G updates so far
    images = generator_ema.model([z, labels], training=False)   # [B, R, R, 3], the averaged network

After each update every floating-point variable of the shadow becomes
`shadow = decay · shadow + (1 − decay) · live`; before `start_step` (warm-up, when the live weights
still move fast) decay is 0 and the shadow is a copy of the generator.

Batch-norm moving statistics are averaged like the weights (BigGAN) rather than copied (StyleGAN2):
the averaged network's pre-normalisation activations are, to first order, the average of the live
network's, which the latest live statistics (its last ~1/(1 − BN momentum) steps) match worse. The
singular vectors u of spectrally normalised layers are averaged too (`cgan.model.layers` normalises u
before each use); non-float variables, if any, are copied.

The shadow is a second `keras.Model` of the generator's architecture (same layers, dtype policy and
float32 variables): it samples, evaluates and exports like the generator, and in the checkpoint a
resumed run restores the average exactly. Built inside the generator's `strategy.scope()`, its
variables are mirrored like the generator's and each replica averages its own copy, without communication.
"""

import keras
import tensorflow as tf


class GeneratorEMA:
    """A shadow generator holding the exponential moving average of a live generator's variables."""

    def __init__(self, generator, decay=0.999, start_step=0):
        """Clones the generator (architecture and current values) into the shadow.

        Args:
            generator: the live `keras.Model`, built.
            decay: weight of the old average per update, in [0, 1).
            start_step: updates with step < start_step copy the live variables (decay 0).
        """
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if _is_distributed(generator.variables) and not tf.distribute.has_strategy():
            raise ValueError("the generator's variables are distributed: build the EMA inside its strategy.scope()")
        self.decay = float(decay)
        self.start_step = int(start_step)
        self._strategy = tf.distribute.get_strategy()
        self.model = keras.models.clone_model(generator)
        self.model.set_weights(generator.get_weights())
        self._pairs = list(zip(self.model.variables, generator.variables))
        for shadow, live in self._pairs:
            if shadow.shape != live.shape or shadow.dtype != live.dtype:
                raise ValueError(f"shadow {shadow.path} {shadow.shape} {shadow.dtype} does not match "
                                 f"{live.path} {live.shape} {live.dtype}")

    def update(self, step):
        """Moves the shadow towards the live generator; call after each generator update.

        Works eagerly and inside a `tf.function`, in replica context (inside `strategy.run`, where it
        steps out to cross-replica context once for all replicas) or in cross-replica context.

        Args:
            step: int scalar (tensor or Python), the step this update follows; steps before
                start_step copy.
        """
        decay = tf.where(tf.cast(step, tf.int64) < self.start_step, 0.0, self.decay)   # [] float32
        if tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context():
            tf.distribute.get_replica_context().merge_call(self._update, args=(decay,))
        else:
            with self._strategy.scope():
                self._update(self._strategy, decay)

    def _update(self, strategy, decay):
        # Each device averages its own components: the live weights are identical on all replicas
        # after the optimizer's all-reduce, so no value needs to cross devices.
        for shadow, live in self._pairs:
            if shadow.dtype.startswith("float"):
                strategy.extended.update(_tf_variable(shadow), _average, args=(_tf_variable(live), decay),
                                         group=False)
            else:
                strategy.extended.update(_tf_variable(shadow), _copy, args=(_tf_variable(live),), group=False)


def _average(shadow, live, decay):
    decay = tf.cast(decay, shadow.dtype)
    return shadow.assign(decay * shadow + (1.0 - decay) * live)


def _copy(shadow, live):
    return shadow.assign(live)


def _tf_variable(variable):
    """The TensorFlow variable (mirrored under a strategy) behind a Keras variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _is_distributed(variables):
    return any(isinstance(_tf_variable(v), tf.distribute.DistributedValues) for v in variables)
