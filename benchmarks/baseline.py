"""The baseline's way of training (the original notebook's `fit` loop), which the benchmark times
beside the trainer.

    from benchmarks import baseline
    from cgan.model import networks
    gan = baseline.BaselineGAN(networks.build_generator(64, 100, 9),
                               networks.build_discriminator(64, 9), latent_dim=100)
    gan.compile()                                       # Adam 2e-4, beta_1 0.5 for each network
    images = baseline.normalise(uint8_images)           # [N, 64, 64, 3] float32 numpy in [-1, 1]
    gan.fit(images, labels, batch_size=16, epochs=10)   # labels [N] int32 numpy

What is the same as the trainer: the networks (cgan.model.networks, float32), the composition of a step
(one discriminator update on a real and a generated batch, then one generator update, fakes
conditioned on the real batch's labels) and the loss (binary cross-entropy from logits).

What is the baseline's: `keras.Model.fit` drives the loop, so every step is its own tf.function call;
the images are a float32 numpy array that Keras slices into batches each epoch; the noise comes from
`tf.random.normal`, and the generator update draws fresh noise (one more generator forward pass);
the losses are `keras.losses.BinaryCrossentropy(from_logits=True)`. XLA is off and one step runs
per call, as in the Keras 2 defaults the baseline was written against.
"""

import keras
import numpy as np
import tensorflow as tf

LEARNING_RATE = 2e-4
BETA_1 = 0.5


def normalise(images):
    """uint8 [N, R, R, 3] -> float32 [N, R, R, 3] in [-1, 1], done once up front as the baseline did."""
    return images.astype(np.float32) / 127.5 - 1.0


class BaselineGAN(keras.Model):
    """A keras.Model holding G and D whose `train_step` is one D update then one G update."""

    def __init__(self, generator, discriminator, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim

    def compile(self, learning_rate=LEARNING_RATE, beta_1=BETA_1):
        """Adam for each network; no XLA and one step per call, the baseline's Keras 2 defaults."""
        super().compile(jit_compile=False, steps_per_execution=1)
        self.d_optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta_1)
        self.g_optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta_1)
        # Built eagerly so that the first traced step does not create optimizer state.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def train_step(self, data):
        images, labels = data                                          # [B, R, R, 3] float32, [B] int32
        batch = tf.shape(images)[0]
        z = tf.random.normal([batch, self.latent_dim])                 # [B, latent]
        with tf.GradientTape() as tape:
            fake = self.generator([z, labels], training=True)                        # [B, R, R, 3]
            real_logits = self.discriminator([images, labels], training=True)       # [B, 1]
            fake_logits = self.discriminator([fake, labels], training=True)         # [B, 1]
            d_loss = (self.bce(tf.ones_like(real_logits), real_logits)
                      + self.bce(tf.zeros_like(fake_logits), fake_logits))
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))

        z = tf.random.normal([batch, self.latent_dim])
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator([self.generator([z, labels], training=True), labels],
                                             training=True)
            g_loss = self.bce(tf.ones_like(fake_logits), fake_logits)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
        return {"d_loss": d_loss, "g_loss": g_loss}
