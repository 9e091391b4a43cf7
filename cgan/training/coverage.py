"""The coverage term (--coverage): every real image pulls its nearest generated image towards it (IMLE).

    pool = coverage.CoveragePool(images, labels, latent_dim=100, pool_factor=10, seed=0)   # real [N, R, R, 3] uint8
    pool.refresh(generator, space, refresh_index=step // every)   # inference passes over the pool, then matching
    z, labels, real = pool.draw(step, count=16, balanced=False)   # [16, latent], [16], [16, R, R, 3] in [-1, 1]
    loss = coverage.pull(space(generator([z, labels]), labels), space(real, labels), global_count)

A GAN's generator may leave whole regions of the data without a sample near them (mode dropping); the
adversarial loss never sees what is missing. Implicit maximum likelihood estimation (Li & Malik 2018),
added to the GAN as in Inclusive GAN (Yu et al. 2020) and used for few-shot sets by RS-IMLE (Vashist et
al. 2024), turns this around: each real image picks its nearest generated candidate and pulls it
closer, so every real image ends up with a sample near it. Conditional here: the candidates of a real
image are those of its own class.

The pool: for class c, pool_factor × N_c latents (N_c its training images), drawn from the stateless
normal of (seed, refresh index), rendered by G in inference mode and mapped into the feature space
(cgan.training.feature_spaces); each real image's nearest candidate there is its matched latent, kept
in `latents` ([N, latent], checkpointed). So the pool and its refresh are a function of (seed, the
step of the refresh) and of G's weights at that step: a run resumed between refreshes reads the
matched latents back from the checkpoint, and one resumed at a refresh step refreshes as the
uninterrupted run did.

Each step, `draw` picks real images by a stateless draw of (seed, step), uniformly (every class equally
often with --balanced), with their matched latents; the step regenerates them with gradient and adds
λ · the mean RMS distance between each and its real image in the same space to G's loss (`pull`).
"""

import numpy as np
import tensorflow as tf

from cgan.inputs import input_pipeline
from cgan.training import feature_spaces

_POOL_SALT = 0x636f76706f6f6c     # the pool's latents, apart from every other stream of --seed
_DRAW_SALT = 0x636f7664726177     # the real images each step pulls
_CHUNK = 256                      # images per inference pass and per block of the nearest-neighbour search


class CoveragePool(tf.Module):
    """The real images, and each one's matched latent (the nearest candidate at the last refresh)."""

    def __init__(self, images, labels, latent_dim, pool_factor, seed, name="coverage"):
        """
        Args:
            images: [N, R, R, 3] uint8, the training split in its stored order.
            labels: [N] int, their classes.
            latent_dim: size of z.
            pool_factor: candidates per real image (each class's pool holds pool_factor × N_c).
            seed: the run's seed.
            name: the module's name (its variables are checkpointed under it).
        """
        super().__init__(name=name)
        labels = np.asarray(labels, np.int32)
        self.num_examples, self.latent_dim = len(labels), int(latent_dim)
        self.pool_factor, self.seed = int(pool_factor), int(seed)
        # Constants, not variables: the data is no state of the run (the checkpoint holds `latents` alone).
        self._images = tf.constant(images)                                            # [N, R, R, 3] uint8
        self._labels = tf.constant(labels)                                            # [N]
        classes, counts = np.unique(labels, return_counts=True)
        self._classes = classes
        self._members = [np.flatnonzero(labels == c) for c in classes]               # indices of each class
        self._by_class = tf.constant(np.concatenate(self._members), tf.int64)        # [N] grouped by class
        self._offsets = tf.constant(np.cumsum(counts) - counts, tf.int64)            # [C]
        self._counts = tf.constant(counts, tf.int64)                                 # [C]
        self.latents = tf.Variable(tf.zeros([self.num_examples, self.latent_dim]), trainable=False, name="latents")
        self._render = None

    @property
    def pool_size(self):
        """Candidates in the whole pool."""
        return self.pool_factor * self.num_examples

    def refresh(self, generator, space, refresh_index):
        """Draws the pool of this refresh, renders it and matches every real image to its nearest candidate.

        Args:
            generator: G, called in inference mode.
            space: a feature_spaces.FeatureSpace.
            refresh_index: int, which refresh this is (the step // --coverage_every).

        Returns:
            float: the mean RMS distance of the real images to their nearest candidates.
        """
        if self._render is None:
            def render(z, labels):
                images = generator([z, labels], training=False)                     # [b, R, R, 3]
                return space(images, labels)                                          # [b, F]
            self._render = tf.function(render, reduce_retracing=True)
            self._real_features = tf.function(lambda images, labels: space(input_pipeline.normalise(images), labels),
                                              reduce_retracing=True)
        seed = tf.constant([self.seed ^ _POOL_SALT, int(refresh_index)], tf.int64)
        pool = tf.random.stateless_normal([self.pool_size, self.latent_dim], seed)  # [P, latent]
        real_features = self._in_chunks(self._real_features, self._images, self._labels)           # [N, F]
        matched = np.zeros([self.num_examples], np.int64)
        nearest = np.zeros([self.num_examples], np.float64)
        start = 0
        # Class by class, so that only one class's candidates are held: class c's are the pool's rows
        # [factor · offset_c, factor · (offset_c + N_c)).
        for label, members in zip(self._classes, self._members):
            end = start + self.pool_factor * len(members)
            labels = tf.fill([end - start], tf.constant(label, tf.int32))
            candidates = self._in_chunks(self._render, pool[start:end], labels)                  # [P_c, F]
            for block in range(0, len(members), _CHUNK):
                rows = members[block:block + _CHUNK]
                squared = feature_spaces.squared_distances(tf.gather(real_features, rows), candidates)  # [rows, P_c]
                matched[rows] = start + tf.argmin(squared, axis=1).numpy()
                nearest[rows] = np.sqrt(tf.reduce_min(squared, axis=1).numpy())
            start = end
        self.latents.assign(tf.gather(pool, matched))
        return float(nearest.mean())

    @staticmethod
    def _in_chunks(function, inputs, labels):
        return tf.concat([function(inputs[i:i + _CHUNK], labels[i:i + _CHUNK])
                          for i in range(0, int(inputs.shape[0]), _CHUNK)], axis=0)

    def draw(self, step, count, balanced):
        """The real images step `step` pulls with their matched latents (a stateless draw of (seed, step)).

        Args:
            step: int64 scalar tensor, the step.
            count: images to draw (the global coverage batch).
            balanced: every class equally likely (--balanced), instead of every image.

        Returns:
            (latents [count, latent] float32, labels [count] int32, images [count, R, R, 3] float32 in [-1, 1]).
        """
        seed = tf.stack([tf.constant(self.seed ^ _DRAW_SALT, tf.int64), tf.cast(step, tf.int64)])
        uniform = tf.random.stateless_uniform([2, count], seed, dtype=tf.float64)   # [2, count]
        if balanced:
            classes = tf.minimum(tf.cast(uniform[0] * len(self._classes), tf.int64), len(self._classes) - 1)
            counts = tf.gather(self._counts, classes)
            within = tf.minimum(tf.cast(uniform[1] * tf.cast(counts, tf.float64), tf.int64), counts - 1)
            indices = tf.gather(self._by_class, tf.gather(self._offsets, classes) + within)
        else:
            indices = tf.minimum(tf.cast(uniform[0] * self.num_examples, tf.int64), self.num_examples - 1)
        return (tf.gather(self.latents, indices), tf.gather(self._labels, indices),
                input_pipeline.normalise(tf.gather(self._images, indices)))


def pull(generated_features, real_features, global_count):
    """The coverage loss: Σ RMS distance(generated_i, real_i) ÷ the global coverage batch (this replica's share).

    Args:
        generated_features: [k, F] features of the regenerated matched latents (with gradient to G).
        real_features: [k, F] features of their real images (treated as constants).
        global_count: the coverage batch summed over replicas.
    """
    per_image = feature_spaces.distances(generated_features, tf.stop_gradient(real_features))   # [k]
    return tf.reduce_sum(per_image) / tf.cast(global_count, tf.float32)
