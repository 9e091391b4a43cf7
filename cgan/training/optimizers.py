"""Adam whose per-variable update is TensorFlow's fused kernel instead of a dozen small ops.

    optimizer = optimizers.FusedAdam(2e-4, beta_1=0.5)       # a drop-in keras.optimizers.Adam

keras.optimizers.Adam writes its update (m, v, then the variable) as separate small operations, a
dozen per variable, whose launches count in a step of networks this small (BUILD_NOTES.md, "Speed",
and `python -m benchmarks`). FusedAdam runs the same rule,

    m += (g - m)(1 - β1);  v += (g² - v)(1 - β2);  w -= lr·√(1 - β2ᵗ)/(1 - β1ᵗ) · m / (√v + ε)

as one `ResourceApplyAdam` per variable. Its variables (iterations, per-variable m and v) are the
Keras optimizer's own, so checkpoints move freely between the two classes; LossScaleOptimizer and
distribution strategies wrap it as they wrap Adam. `amsgrad=True` falls back to Keras' update.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="cgan")
class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam with a fused update; same arguments, state, variable names and rule."""

    def __init__(self, *args, name="adam", **kwargs):
        super().__init__(*args, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype), use_locking=False)
