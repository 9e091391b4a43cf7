"""The training step: the GAN's networks, optimizers and random state, and their compiled update.

    step = TrainStep(config, strategy, policy, class_names, resolution=64)
    metrics = step.run_steps(iterator, num_steps=20)   # {"d_loss": ..., "g_loss": ..., "d_real": ..., "d_fake": ...}
    step.checkpoint                                     # tf.train.Checkpoint of everything that must resume
    step.sampling_generator                             # the EMA generator when there is one

One step = one discriminator update on a real and a generated batch, then one generator update
through the updated discriminator on the same generated batch (one generator forward pass serves both
updates). Fake images use the real batch's labels, so both networks see classes in the data's
proportions (or equally often with --balanced, which balances the real batches).

Randomness that must resume exactly — the noise z and the augmentation parameters — is drawn from a
checkpointed `tf.random.Generator` for the GLOBAL batch and sliced per worker and replica, so a
resumed run, and a run on another number of replicas, sees the same numbers. Losses are reduced as
cgan.training.losses states (per-example sum ÷ global batch; replicas' gradients are summed).

With --dp_epsilon the real batch is a Poisson sample of varying size and D's update on it is DP-SGD
(cgan.training.privacy): the fakes then take labels drawn from the class proportions (uniform with
--balanced), not the real batch's, so that G's update uses no real label.
"""

import numpy as np
import tensorflow as tf

from cgan.core import seeding

from cgan.model import layout, networks

from cgan.training import (ada, augment, coverage, distribute, ema, feature_spaces, losses, optimizers, precision,
                           privacy, schedules)
from cgan.training.distribute import WorkerInfo
from cgan.core.errors import UserError


DP_CHUNKS_PER_BATCH = 2   # a private step computes per-example gradients in chunks of batch / 2 images


def packs_to_blocks(rows, pack):
    """[b, ...] rows in adjacent packs (the stream's: 0..k−1 one pack) -> k blocks of b / k: pack i is rows
    i + j·b/k, so that a batch's halves, its quarters, ... keep to whole packs' members."""
    return tf.concat([rows[j::pack] for j in range(pack)], axis=0)


def stack_blocks(images, pack):
    """[b, R, R, 3] in k blocks -> [b / k, R, R, 3k]: each pack's images side by side in channels (D's input)."""
    return tf.concat(tf.split(images, pack, axis=0), axis=-1)


class TrainStep:
    """Holds the networks, optimizers, EMA, noise generator and step counter of one run."""

    def __init__(self, config, strategy, policy, class_names, resolution, worker=WorkerInfo(), class_counts=None,
                 real_examples=None):
        """
        Args:
            config: the run's TrainConfig.
            strategy: the tf.distribute strategy (cgan.training.distribute.make_strategy).
            policy: Keras dtype policy name (cgan.training.precision.resolve).
            class_names: label names; index i names label i.
            resolution: image side in pixels.
            worker: this process's place in a multi-worker cluster.
            class_counts: [C] training images per class; the private step draws the fakes' labels from
                their proportions (needed with --dp_epsilon, unless --balanced).
            real_examples: (images [N, R, R, 3] uint8, labels [N]), the whole training split; needed with
                --coverage, whose pool matches every real image.

        Raises:
            UserError: an architecture option that does not fit the resolution; --dp_epsilon on several
                replicas.
        """
        self.config = config
        self.strategy = strategy
        self.worker = worker
        self.policy = policy
        self.class_names = tuple(class_names)
        self.resolution = resolution
        self.augment_policy = config.augmentations
        num_classes = len(self.class_names)
        synchronized = strategy.num_replicas_in_sync > 1
        if config.pack > 1 and (config.batch_size // strategy.num_replicas_in_sync) % config.pack:
            raise UserError(f"--pack={config.pack} packs the images of each replica's batch: --batch_size="
                            f"{config.batch_size} over {strategy.num_replicas_in_sync} replicas leaves part of a "
                            f"pack; use a multiple of {config.pack * strategy.num_replicas_in_sync}")
        self._judged = config.batch_size // config.pack    # what D's losses average over: images or packs
        self.transitional = bool(config.transition_end)
        if config.private:
            if strategy.num_replicas_in_sync > 1:
                raise UserError(f"--dp_epsilon trains on one replica, not {strategy.num_replicas_in_sync}: make one "
                                f"device visible (e.g. CUDA_VISIBLE_DEVICES=0)")
            weights = np.ones(num_classes) if config.balanced or class_counts is None else np.asarray(class_counts)
            self._fake_label_cdf = tf.constant(np.cumsum(weights) / np.sum(weights), tf.float32)   # [C]
            self._dp_chunk = max(1, -(-config.batch_size // DP_CHUNKS_PER_BATCH))
        with strategy.scope():
            # The layers' initialisers take no seeds: the weights come from the global seed, set here so
            # that they depend on --seed alone, not on what ran before (a dataset build, say).
            seeding.set_global_seed(config.seed)
            # TrainConfig has checked the architecture options against each other and the resolution.
            self.generator = networks.build_generator(
                resolution, config.latent_dim, num_classes, dtype=policy, synchronized_bn=synchronized,
                conditioning=config.g_conditioning, spectral_norm=config.g_spectral_norm,
                attention_resolution=config.g_attention, architecture=config.arch,
                channels=config.g_channels or None, class_strength=self.transitional,
                unconditional_below=config.unconditional_below)
            self.discriminator = networks.build_discriminator(
                resolution, num_classes, dtype=policy, synchronized_bn=synchronized,
                conditioning=config.d_conditioning, norm=config.d_norm,
                attention_resolution=config.d_attention, architecture=config.arch,
                channels=config.d_channels or None, class_strength=self.transitional,
                minibatch_std=config.d_minibatch_std, pack=config.pack)
            self._build_layout(config, policy)
            self.g_optimizer = self._make_optimizer(config.g_learning_rate or config.learning_rate)
            self.d_optimizer = self._make_optimizer(config.d_learning_rate or config.learning_rate)
            # Built eagerly: an optimizer first built inside strategy.run in a tf.function fails.
            self.g_optimizer.build(self._g_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.ema = (ema.GeneratorEMA(self.generator, config.ema_decay, config.ema_start)
                        if config.ema_decay else None)
            self.lecam = losses.LeCamAnchors(config.lecam_decay) if config.lecam else None
            self.ada = (ada.AdaptiveAugment(config.ada_target, config.ada_interval, config.ada_speed_images)
                        if config.ada_target else None)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.noise = tf.random.Generator.from_seed(config.seed)
        self.privacy = privacy.PrivacyState() if config.private else None   # one replica: outside the scope
        self._build_diversity_terms(config, real_examples)
        # Options add their state only when they are on, so checkpoints of runs without them stay as they were.
        optional = {"ema_generator": self.ema.model if self.ema else None, "lecam": self.lecam, "ada": self.ada,
                    "privacy": self.privacy, "coverage": self.coverage, "layout_head": self.layout_head,
                    "layout_discriminator": self.layout_discriminator, "layout_optimizer": self.layout_optimizer}
        self.checkpoint = tf.train.Checkpoint(step=self.step, generator=self.generator,
                                              discriminator=self.discriminator,
                                              g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer,
                                              noise=self.noise, **{k: v for k, v in optional.items() if v})
        self.metric_names = ("d_loss", "g_loss", "d_real", "d_fake") + ("lecam_loss",) * bool(self.lecam) \
            + ("ada_p", "ada_rt") * bool(self.ada) + ("class_strength",) * self.transitional \
            + ("dp_real_images", "dp_clipped") * bool(self.privacy) \
            + ("coverage_distance",) * bool(self.coverage) + ("diversity_loss", "diversity_scale") * bool(config.diversity) \
            + ("layout_d_loss",) * bool(self.layout_head)
        self.jit_compile = distribute.resolve_jit_compile(config)
        # XLA compiles one replica's whole step, both updates included. The loop around it cannot be
        # compiled (it takes the next batch from the iterator) and stays outside, with the draws from the
        # noise generator, so that z and the augmentations are the same numbers with XLA on or off.
        replica_step = self._private_replica_step if self.privacy else self._replica_step
        self._replica_update = tf.function(replica_step, jit_compile=True) if self.jit_compile else replica_step
        self._compiled_steps = tf.function(self._steps, reduce_retracing=True)

    def _build_layout(self, config, policy):
        """--unconditional_below: G's class-free features, the head that draws them and their judge (in scope)."""
        self.layout_head = self.layout_discriminator = self.layout_optimizer = None
        self._generate = self.generator
        self._g_variables = list(self.generator.trainable_variables)
        if not config.unconditional_below:
            return
        self._generate = layout.generator_with_features(self.generator)
        self.layout_head = layout.build_head(self._generate.outputs[1].shape, policy)
        self.layout_discriminator = layout.build_discriminator(config.unconditional_below, policy,
                                                               spectral=config.d_norm == "spectral")
        self.layout_optimizer = self._make_optimizer(config.d_learning_rate or config.learning_rate)
        self.layout_optimizer.build(self.layout_discriminator.trainable_variables)
        self._g_variables += self.layout_head.trainable_variables

    def _build_diversity_terms(self, config, real_examples):
        """--coverage's pool (outside the strategy's scope: one copy, refreshed between calls) and the spaces."""
        self.coverage = None
        replicas = self.strategy.num_replicas_in_sync
        # Each replica pulls half its share of the batch (at least one image).
        self._coverage_per_replica = max(1, config.batch_size // replicas // 2)
        if config.coverage:
            if real_examples is None:
                raise ValueError("--coverage needs the training split (real_examples)")
            images, labels = real_examples
            self.coverage = coverage.CoveragePool(images, labels, config.latent_dim, config.coverage_pool, config.seed)
            self.coverage_space = feature_spaces.FeatureSpace(config.coverage_space, self.discriminator)
        if config.diversity:
            self.diversity_space = feature_spaces.FeatureSpace(config.diversity_space, self.discriminator)

    def coverage_due(self):
        """True when --coverage is on and the pool is due for a refresh before the next step."""
        return bool(self.coverage) and int(self.step.numpy()) % self.config.coverage_every == 0

    def refresh_coverage(self):
        """Refreshes the coverage pool with G as it is now (see cgan.training.coverage).

        Returns:
            float: the mean distance of the real images to their nearest candidates in the pool.
        """
        index = int(self.step.numpy()) // self.config.coverage_every
        return self.coverage.refresh(self.generator, self.coverage_space, index)

    def _make_optimizer(self, learning_rate):
        optimizer = optimizers.FusedAdam(learning_rate, beta_1=self.config.beta_1, beta_2=self.config.beta_2)
        return precision.wrap_optimizer(optimizer, self.policy)

    @property
    def sampling_generator(self):
        """The generator to sample, evaluate and export: the EMA one when there is one."""
        return self.ema.model if self.ema else self.generator

    def start_privacy(self, num_examples):
        """The privacy.Plan of a --dp_epsilon run, after any restore: σ calibrated now, or the checkpoint's.

        Raises:
            UserError: see privacy.plan.
        """
        self.privacy_plan = self.privacy.start(self.config, num_examples)
        return self.privacy_plan

    def run_steps(self, iterator, num_steps):
        """Runs num_steps steps in one compiled call; returns the last step's metrics as floats."""
        metrics = self._compiled_steps(iterator, tf.constant(num_steps, tf.int64))
        return {name: float(value) for name, value in metrics.items()}

    def weights_finite(self):
        """False when any weight of either network is NaN or infinite."""
        variables = self.generator.variables + self.discriminator.variables
        return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables)

    # The compiled loop: draws the global batch's randomness, runs the replicas, averages the metrics.

    def _steps(self, iterator, num_steps):
        """Runs num_steps steps; returns the last step's metrics (global means)."""
        metrics = {name: tf.constant(0.0) for name in self.metric_names}
        for _ in tf.range(num_steps):
            images, labels = next(iterator)                   # [GB / workers, R, R, 3], [GB / workers]
            z = self._worker_rows(self.noise.normal([self.config.batch_size, self.config.latent_dim]))
            if self.privacy:
                strength = self._set_class_strength(self.generator, self.discriminator)
                per_replica = self.strategy.run(self._replica_update, args=self._private_inputs(images, labels, z))
            else:
                aug = self._worker_augment_params()
                pulled = ()
                if self.coverage:
                    count = self._coverage_per_replica * self.strategy.num_replicas_in_sync
                    pulled = tuple(self._worker_rows(t, count) for t in self.coverage.draw(self.step, count,
                                                                                           self.config.balanced))
                strength = self._set_class_strength(self.generator, self.discriminator)
                per_replica = self.strategy.run(self._sliced_step, args=(images, labels, z, aug, pulled))
            if self.ema:
                self.ema.update(self.step)
                self._set_class_strength(self.ema.model)  # follows the schedule, not a lagging mean of it
            self.step.assign_add(1)
            metrics = self._metrics(per_replica, strength)
        return metrics

    def _set_class_strength(self, *models):
        """Sets λ of the transitional schedule at this step in `models`; returns it (None when off)."""
        if not self.transitional:
            return None
        strength = schedules.class_strength(self.step, self.config.transition_start, self.config.transition_end)
        for model in models:
            networks.set_class_strength(model, strength)
        return strength

    def _metrics(self, per_replica, strength):
        """The step's global metrics: losses summed over replicas (see cgan.training.losses), the rest averaged.

        Also updates the adaptive augmentation probability, which acts on the step just counted.
        """
        metrics = {name: self.strategy.reduce("SUM" if name.endswith("_loss") else "MEAN", value, axis=None)
                   for name, value in per_replica.items()}
        if self.ada:
            self.ada.update(self.step)
            metrics.update(self.ada.metrics())
        if strength is not None:
            metrics["class_strength"] = strength
        return metrics

    def _worker_rows(self, values, total=None):
        """This worker's rows of a tensor over the global batch (axis 0 for [GB, ...]), or over `total` rows."""
        per_worker = (total or self.config.batch_size) // self.worker.num_workers
        return values[self.worker.index * per_worker:(self.worker.index + 1) * per_worker]

    def _worker_augment_params(self):
        """[3, GB / workers, P]: real and fake for the D update, fake for the G update (P: augment's widths)."""
        adaptive = self.ada is not None
        if not self.augment_policy:
            return tf.zeros([3, self.config.batch_size // self.worker.num_workers, augment.NUM_PARAMS])
        params = [self._worker_rows(augment.random_params(self.noise, self.config.batch_size, adaptive=adaptive))
                  for _ in range(3)]
        return tf.stack(params)

    def _private_inputs(self, images, labels, z):
        """A private step's arguments: the Poisson batch padded to whole chunks, its mask, the fakes'
        labels, augmentation parameters and D's gradient noise (all drawn outside the compiled step).

        Shapes: images [k, R, R, 3] -> [M, R, R, 3] (M = k rounded up to whole chunks, at least one),
        labels [k] -> [M], mask [M], fake_labels [B], z [B, latent], aug_real [M, P], aug_fake [2, B, P]. D's
        gradient noise comes from the privacy state's secret generator, everything else from --seed's.
        """
        batch, chunk = self.config.batch_size, self._dp_chunk
        count = tf.shape(labels)[0]
        padded = tf.maximum(1, (count + chunk - 1) // chunk) * chunk
        images = tf.pad(images, [[0, padded - count], [0, 0], [0, 0], [0, 0]])
        labels = tf.pad(labels, [[0, padded - count]])
        mask = tf.cast(tf.range(padded) < count, tf.float32)
        fake_labels = tf.searchsorted(self._fake_label_cdf, self.noise.uniform([batch]), side="right")
        fake_labels = tf.minimum(tf.cast(fake_labels, tf.int32), len(self.class_names) - 1)   # a cdf ending at 1 - ε
        if self.augment_policy:
            aug_real = augment.random_params(self.noise, padded)
            aug_fake = tf.stack([augment.random_params(self.noise, batch) for _ in range(2)])
        else:
            aug_real, aug_fake = tf.zeros([padded, augment.NUM_PARAMS]), tf.zeros([2, batch, augment.NUM_PARAMS])
        noise = [self.privacy.noise.normal(v.shape) for v in self.discriminator.trainable_variables]
        return images, labels, mask, fake_labels, z, aug_real, aug_fake, noise

    def _sliced_step(self, images, labels, z, aug, pulled):
        """Runs in each replica: keeps this replica's rows of the worker's batch (and of the coverage draw, whose
        replicas take _coverage_per_replica rows each), then steps."""
        local_replicas = self.strategy.num_replicas_in_sync // self.worker.num_workers
        per_replica = self.config.batch_size // self.strategy.num_replicas_in_sync
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        local = replica - self.worker.index * local_replicas
        rows = slice(local * per_replica, (local + 1) * per_replica)
        pulled_rows = slice(local * self._coverage_per_replica, (local + 1) * self._coverage_per_replica)
        return self._replica_update(images[rows], labels[rows], z[rows], aug[:, rows],
                                    tuple(t[pulled_rows] for t in pulled))

    # The GAN math of one replica.

    def _augment(self, images, params):
        """D's view of a batch: DiffAugment when --augment is set (each op with probability p under
        --ada_target), the images themselves otherwise."""
        if not self.augment_policy:
            return images
        return augment.diff_augment(images, params, self.augment_policy, strength=self.ada.p if self.ada else None)

    def _replica_step(self, images, labels, z, aug, pulled=()):
        """One D and one G update on this replica's slice, from one generator forward pass.

        The generated batch serves both updates: D learns to reject it, then G is pushed through the
        updated D with the same images. The generator's weights do not change in between, so its
        forward pass (recorded by the outer tape while the D update is kept off it) is still the one
        G's gradient needs. With --coverage the same pass also regenerates the matched latents of the
        real images this step pulls (`pulled`), appended after the batch; D never sees them.

        Shapes: images [b, R, R, 3], labels [b], z [b, latent], aug [3, b, P]; pulled: () or (latents
        [k, latent], labels [k], real images [k, R, R, 3]).
        """
        config, batch = self.config, self._judged
        replicas = self.strategy.num_replicas_in_sync
        pack = config.pack
        fake_labels = labels
        if pack > 1:  # the stream's adjacent same-class packs -> k blocks: rows i + j·b/k form pack i
            images, labels = packs_to_blocks(images, pack), packs_to_blocks(labels, pack)
            fake_labels = tf.tile(labels[:tf.shape(labels)[0] // pack], [pack])   # so also pairs (i, i + b/2)
        elif config.pairs_labels:  # pairs (i, i + b/2) share a label and differ in z
            half = tf.shape(labels)[0] // 2
            fake_labels = tf.concat([labels[:half], labels[:half], labels[2 * half:]], axis=0)
        extra = {}
        with tf.GradientTape() as g_tape:
            fake, fake_layout, regenerated = self._generate_batch(z, fake_labels, pulled)   # [b, R, R, 3], ...
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    real_logits = self._judge(self._augment(images, aug[0]), labels)              # [b / pack, 1]
                    fake_logits = self._judge(self._augment(tf.stop_gradient(fake), aug[1]), fake_labels)
                    d_loss = losses.discriminator_loss(real_logits, fake_logits, batch, kind=config.loss)
                    d_total = d_loss
                    if self.ada:
                        self.ada.accumulate(real_logits)
                    if self.lecam:
                        anchor_real, anchor_fake = self.lecam.update(real_logits, fake_logits)
                        extra["lecam_loss"] = losses.lecam_penalty(real_logits, fake_logits, anchor_real,
                                                                   anchor_fake, batch)
                        d_total += config.lecam * extra["lecam_loss"]
                    if config.r1_gamma:
                        r1 = losses.r1_penalty(self.discriminator, images, labels, batch,
                                               augment=lambda x: self._augment(x, aug[0]))
                        d_total += config.r1_gamma / 2 * r1
                    scaled = precision.scale_loss(self.d_optimizer, d_total)
                variables = self.discriminator.trainable_variables
                self.d_optimizer.apply_gradients(zip(d_tape.gradient(scaled, variables), variables))
                if self.layout_discriminator is not None:
                    extra["layout_d_loss"] = self._layout_update(images, fake_layout)
            g_logits = self._judge(self._augment(fake, aug[2]), fake_labels)
            g_loss = losses.generator_loss(g_logits, batch, kind=config.loss)
            if config.mode_seeking:
                g_loss += config.mode_seeking * losses.mode_seeking_loss(fake, z, replicas)
            if self.layout_discriminator is not None:   # UTLO's unconditional term, weighted 1 as the authors do
                layout_logits = self.layout_discriminator(fake_layout, training=True)
                g_loss += losses.generator_loss(layout_logits, config.batch_size, kind=config.loss)
            if config.diversity:
                term, extra["diversity_scale"] = losses.diversity_loss(
                    self.diversity_space(fake, fake_labels), self.diversity_space(images, labels), labels, replicas)
                extra["diversity_loss"] = term
                g_loss += config.diversity * term
            if self.coverage:
                _, pulled_labels, pulled_real = pulled
                generated = self.coverage_space(regenerated, pulled_labels)                   # [k, F]
                target = self.coverage_space(pulled_real, pulled_labels)                     # [k, F]
                g_loss += config.coverage * coverage.pull(generated, target, self._coverage_per_replica * replicas)
                extra["coverage_distance"] = tf.reduce_mean(feature_spaces.distances(generated, target))
            scaled = precision.scale_loss(self.g_optimizer, g_loss)
        variables = self._g_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(scaled, variables), variables))

        d_real = tf.reduce_mean(tf.sigmoid(tf.cast(real_logits, tf.float32)))
        d_fake = tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32)))
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake, **extra}

    def _judge(self, images, labels):
        """D's logits on a batch: each image alone, or with --pack=k rows i + j·b/k (j < k, one label) stacked
        channel-wise as one pack ([b / k, 1])."""
        if self.config.pack == 1:
            return self.discriminator([images, labels], training=True)
        packed = stack_blocks(images, self.config.pack)                                  # [b / k, R, R, 3k]
        return self.discriminator([packed, labels[:tf.shape(packed)[0]]], training=True)

    def _generate_batch(self, z, labels, pulled):
        """G's one training pass: (the batch [b, R, R, 3], its layout image [b, S, S, 3] or None, the images of
        the pulled latents [k, R, R, 3] or an empty slice)."""
        count = tf.shape(z)[0]
        if pulled:
            z, labels = tf.concat([z, pulled[0]], axis=0), tf.concat([labels, pulled[1]], axis=0)
        outputs = self._generate([z, labels], training=True)
        if self.layout_head is None:
            return outputs[:count], None, outputs[count:]
        images, features = outputs
        return images[:count], self.layout_head(features[:count], training=True), images[count:]

    def _layout_update(self, images, fake_layout):
        """The layout discriminator's update: real images average-pooled to S×S against G's layout images,
        classes ignored. Returns its loss (this replica's share, as every loss)."""
        factor = images.shape[1] // self.config.unconditional_below
        real_layout = tf.nn.avg_pool2d(images, factor, factor, "VALID")                  # [b, S, S, 3]
        with tf.GradientTape() as tape:
            real_logits = self.layout_discriminator(real_layout, training=True)
            fake_logits = self.layout_discriminator(tf.stop_gradient(fake_layout), training=True)
            loss = losses.discriminator_loss(real_logits, fake_logits, self.config.batch_size, kind=self.config.loss)
            scaled = precision.scale_loss(self.layout_optimizer, loss)
        variables = self.layout_discriminator.trainable_variables
        self.layout_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss

    def _private_replica_step(self, images, labels, mask, fake_labels, z, aug_real, aug_fake, noise):
        """One private D update (DP-SGD on the real images, see cgan.training.privacy) and one G update.

        D's gradient = (Σ_i clip(∇ real_term_i) + N(0, (σ · clip)² I)) / B + ∇ fake_loss, B the expected
        real batch (--batch_size): dividing by the sample's own size would reveal it. The real images'
        terms run through D one by one in inference mode, so no image affects another's gradient (the
        spectral norms' power iteration advances on the generated batch, and depends on no image).

        Shapes: images [M, R, R, 3], labels [M], mask [M], fake_labels [B], z [B, latent],
        aug_real [M, P], aug_fake [2, B, P], noise: tensors shaped like D's trainable variables.
        """
        config, batch = self.config, self.config.batch_size
        if config.pairs_labels:  # pairs (i, i + b/2) share a label and differ in z
            half = batch // 2
            fake_labels = tf.concat([fake_labels[:half], fake_labels[:half], fake_labels[2 * half:]], axis=0)
        variables = self.discriminator.trainable_variables
        scale = precision.scale_loss(self.d_optimizer, tf.constant(1.0))   # the loss scale (1 without one)

        def real_term(image, label):
            logit = self.discriminator([image[None], label[None]], training=False)               # [1, 1]
            return scale * losses.real_terms(logit, config.loss)[0], tf.reshape(logit, [])

        with tf.GradientTape() as g_tape:
            fake = self.generator([z, fake_labels], training=True)                        # [B, R, R, 3]
            with g_tape.stop_recording():
                clipped_sums, real_logits, norms = privacy.clipped_gradient_sum(
                    real_term, variables, (self._augment(images, aug_real), labels), mask,
                    scale * config.dp_clip, self._dp_chunk)                               # ..., [M], [M]
                with tf.GradientTape() as d_tape:
                    fake_logits = self.discriminator([self._augment(tf.stop_gradient(fake), aug_fake[0]),
                                                      fake_labels], training=True)        # [B, 1]
                    fake_loss = losses.fake_loss(fake_logits, batch, kind=config.loss)
                    scaled = precision.scale_loss(self.d_optimizer, fake_loss)
                noise_stddev = scale * config.dp_clip * tf.cast(self.privacy.noise_multiplier, tf.float32)
                gradients = [(total + noise_stddev * draw) / batch + tf.cast(fake_gradient, tf.float32)
                             for total, draw, fake_gradient in zip(clipped_sums, noise,
                                                                   d_tape.gradient(scaled, variables))]
                self.d_optimizer.apply_gradients(zip(gradients, variables))
            g_logits = self.discriminator([self._augment(fake, aug_fake[1]), fake_labels], training=True)
            g_loss = losses.generator_loss(g_logits, batch, kind=config.loss)
            if config.mode_seeking:
                g_loss += config.mode_seeking * losses.mode_seeking_loss(fake, z, 1)
            scaled = precision.scale_loss(self.g_optimizer, g_loss)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(scaled, variables), variables))

        count = tf.reduce_sum(mask)
        real_loss = tf.reduce_sum(mask * losses.real_terms(real_logits, config.loss)) / batch
        return {"d_loss": real_loss + fake_loss, "g_loss": g_loss,
                "d_real": tf.reduce_sum(mask * tf.sigmoid(real_logits)) / tf.maximum(count, 1.0),
                "d_fake": tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32))),
                "dp_real_images": count,
                "dp_clipped": tf.reduce_sum(mask * tf.cast(norms > scale * config.dp_clip, tf.float32))
                / tf.maximum(count, 1.0)}
