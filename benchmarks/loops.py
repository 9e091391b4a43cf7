"""The timed loops. Each has warm_up() and measure() -> (work units, wall seconds, CPU seconds).

    from benchmarks import loops
    loop = loops.TrainerLoop(config, data, loops.trainer_config(config, 16, "mixed_bfloat16"))
    loop.warm_up()                                  # tracing, XLA compilation and first allocations, untimed
    steps, wall, cpu = loop.measure()               # config.steps steps

    TrainerLoop    the trainer's step on cgan.inputs.input_pipeline's stream: what trainer.py runs.
    BaselineLoop   benchmarks.baseline.BaselineGAN trained with `fit` on numpy images, over whole
                   epochs; its clock starts after the first batch of each fit call.
    PipelineLoop   cgan.inputs.input_pipeline.train_dataset drained inside a tf.function, with no model.
    MatmulLoop     a chain of n×n tf.matmul in one dtype: the FLOP/s this machine can reach.
(benchmarks.torch_reference.TorchLoop, the eager PyTorch reference, has the same interface.)
"""

import keras
import numpy as np
import tensorflow as tf

from benchmarks import baseline
from benchmarks.machine import clock
from cgan.core import seeding
from cgan.inputs import input_pipeline
from cgan.model import networks
from cgan.training import distribute, precision, step
from cgan.core.config import TrainConfig


def make_trainer(train_config, policy, class_names, resolution, real_examples=None):
    """The trainer's step object over the strategy of train_config: the one place that names it.

    Args:
        train_config: a cgan.core.config.TrainConfig.
        policy: a Keras dtype policy name.
        class_names: the dataset's class names.
        resolution: image side in pixels.
        real_examples: (images, labels) of the training split, which --coverage's pool needs.

    Returns:
        An object with `generator`, `discriminator` and `run_steps(iterator, num_steps)`.
    """
    return step.TrainStep(train_config, distribute.make_strategy(train_config), policy, class_names, resolution,
                          class_counts=np.ones(len(class_names)), real_examples=real_examples)


def _calls(total, size, start=0, every=0):
    """The steps of each call when `total` steps from step `start` run in calls of at most `size`, a call
    ending wherever the step reaches a multiple of `every` (0: never)."""
    while total > 0:
        steps = min(total, size, every - start % every if every else total)
        yield steps
        start, total = start + steps, total - steps


def trainer_config(config, batch_size, policy):
    """The TrainConfig of the full benchmark's trainer: the defaults (the baseline's setup) at one batch
    size and precision, with the benchmark's dataset, latent size, seed and steps per call.

    Args:
        config: a BenchmarkConfig.
        batch_size: images per step.
        policy: a Keras dtype policy name.

    Returns:
        a cgan.core.config.TrainConfig.
    """
    # The step writes nothing into its workdir; the config only needs one named.
    return TrainConfig(workdir="benchmark", dataset=config.dataset, batch_size=batch_size,
                       latent_dim=config.latent_dim, precision=policy, seed=config.seed,
                       steps_per_call=config.steps_per_call)


class TrainerLoop:
    """The trainer stepping on cgan.inputs.input_pipeline's stream: what trainer.py runs for a TrainConfig."""

    def __init__(self, config, data, train_config):
        """
        Args:
            config: the BenchmarkConfig (steps and warm-up steps).
            data: benchmarks.training_data.TrainingData.
            train_config: the cgan.core.config.TrainConfig whose step is timed (batch size, options,
                precision, --jit_compile, steps per call, seed).
        """
        self.config = config
        self.train_config = train_config
        self.trainer = make_trainer(train_config, precision.resolve(train_config.precision), data.class_names,
                                    data.resolution, (data.images, data.labels))
        if train_config.private:   # the Poisson sample of cgan.train, at the calibrated rate
            plan = self.trainer.start_privacy(len(data.images))
            fetch = input_pipeline.memory_fetch(data.images, data.labels)
            dataset = input_pipeline.poisson_dataset(fetch, len(data.images), plan.sampling_rate,
                                                     self.trainer.privacy.sampling_seed, mirror=train_config.mirror)
        else:
            dataset = input_pipeline.train_dataset(data.images, data.labels, train_config.batch_size, train_config.seed,
                                                   balanced=train_config.balanced, mirror=train_config.mirror,
                                                   pack=train_config.pack)
        self.iterator = iter(dataset)

    def _run(self, num_steps):
        # Calls of steps_per_call steps, as the training loop makes between summaries; run_steps
        # returns Python floats, so each call has finished when it returns. --coverage's pool is
        # refreshed where the loop would refresh it (a call then ends at the refresh step), so its cost
        # lands in the round that reaches it.
        every = self.train_config.coverage_every if self.train_config.coverage else 0
        for steps in _calls(num_steps, self.train_config.steps_per_call, int(self.trainer.step.numpy()), every):
            if self.trainer.coverage_due():
                self.trainer.refresh_coverage()
            self.trainer.run_steps(self.iterator, steps)

    def warm_up(self):
        self._run(self.config.warmup_steps)

    def measure(self):
        wall, cpu = clock()
        self._run(self.config.steps)
        wall_end, cpu_end = clock()
        return self.config.steps, wall_end - wall, cpu_end - cpu


class _BatchClock(keras.callbacks.Callback):
    """Notes wall and CPU time at the end of every batch; stops fit after `batches` batches."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        float(logs["d_loss"])  # a value of this step: reading it waits until the step has run
        self.marks.append(clock())
        if len(self.marks) >= self.batches:
            self.model.stop_training = True


def rate_without_epoch_starts(durations, batches_per_epoch):
    """Batches per second over the batches that do not start an epoch.

    Args:
        durations: seconds of batches 2, 3, ... of one fit call (batch 1 starts the clock).
        batches_per_epoch: batches in one epoch.

    Returns:
        float, batches per second.
    """
    # durations[k] is batch k + 2 (1-based), which starts an epoch when k + 1 is a multiple of the epoch.
    inside = [seconds for k, seconds in enumerate(durations) if (k + 1) % batches_per_epoch]
    inside = inside or durations   # one-batch epochs: every batch starts one
    return len(inside) / sum(inside)


class BaselineLoop:
    """benchmarks.baseline.BaselineGAN trained with fit on numpy images: the baseline's way."""

    def __init__(self, config, data, batch_size, normalised_images):
        self.config = config
        self.batch_size = batch_size
        seeding.set_global_seed(config.seed)
        num_classes = len(data.class_names)
        self.gan = baseline.BaselineGAN(
            networks.build_generator(data.resolution, config.latent_dim, num_classes),
            networks.build_discriminator(data.resolution, num_classes), config.latent_dim)
        self.gan.compile()
        # Whole batches only: Keras would end each epoch with a short batch the trainer never has.
        usable = len(normalised_images) // batch_size * batch_size
        self.images = normalised_images[:usable]                       # [N', R, R, 3] float32
        self.labels = data.labels[:usable]
        self.batches_per_epoch = usable // batch_size
        self.slowest_batch_seconds = []   # one per measure(): where Keras' per-epoch cost shows
        self.steps_per_sec_without_epoch_starts = []   # one per measure(): the rate between those costs

    def _fit(self, batches):
        """Runs `batches` batches in one fit call; returns the clock marks at each batch's end."""
        batch_clock = _BatchClock(batches)
        epochs = -(-batches // self.batches_per_epoch)
        self.gan.fit(self.images, self.labels, batch_size=self.batch_size, epochs=epochs, shuffle=True,
                     callbacks=[batch_clock], verbose=0)
        return batch_clock.marks

    def warm_up(self):
        self._fit(self.config.warmup_steps)

    def measure(self):
        # The clock starts when the first batch of this call ends, after Keras' per-call setup, and
        # stops after whole epochs, so that the window holds one epoch start per epoch.
        batches = -(-self.config.steps // self.batches_per_epoch) * self.batches_per_epoch
        marks = self._fit(batches + 1)
        (wall, cpu), (wall_end, cpu_end) = marks[0], marks[-1]
        durations = [end[0] - start[0] for start, end in zip(marks, marks[1:])]  # batches 2, 3, ... of the call
        self.slowest_batch_seconds.append(max(durations))
        self.steps_per_sec_without_epoch_starts.append(rate_without_epoch_starts(durations, self.batches_per_epoch))
        return batches, wall_end - wall, cpu_end - cpu


def _drain(iterator, num_batches):
    checksum = tf.constant(0.0)
    for _ in tf.range(num_batches):
        images, labels = next(iterator)
        # Depending on every batch keeps any of them from being optimised away.
        checksum += images[0, 0, 0, 0] + tf.cast(labels[0], tf.float32)
    return checksum


class PipelineLoop:
    """cgan.inputs.input_pipeline.train_dataset consumed the way the trainer consumes it, with no model."""

    def __init__(self, config, data, batch_size):
        self.config = config
        self.batch_size = batch_size
        self.iterator = iter(input_pipeline.train_dataset(data.images, data.labels, batch_size, config.seed))
        self._drain = tf.function(_drain)

    def _run(self, num_batches):
        self._drain(self.iterator, tf.constant(num_batches, tf.int64)).numpy()

    def warm_up(self):
        self._run(max(self.config.pipeline_batches // 4, 1))

    def measure(self):
        wall, cpu = clock()
        self._run(self.config.pipeline_batches)
        wall_end, cpu_end = clock()
        return self.config.pipeline_batches * self.batch_size, wall_end - wall, cpu_end - cpu


def _matmul_chain(x, w, count):
    for _ in tf.range(count):
        x = tf.matmul(x, w)  # each product feeds the next, so none can be skipped or reused
    return tf.reduce_sum(tf.cast(x[0], tf.float32))


class MatmulLoop:
    """A chain of n×n matmuls in one tf.function: the practical FLOP/s peak in one dtype."""

    def __init__(self, config, dtype):
        n = config.matmul_size
        self.config = config
        self.x = tf.cast(tf.random.stateless_normal([n, n], seed=[1, 2]), dtype)
        # Scaled by 1/√n so the chain's values keep their size instead of overflowing bfloat16.
        self.w = tf.cast(tf.random.stateless_normal([n, n], seed=[3, 4]) / n ** 0.5, dtype)
        self._chain = tf.function(_matmul_chain)

    def _run(self, count):
        self._chain(self.x, self.w, tf.constant(count)).numpy()

    def warm_up(self):
        self._run(1)

    def measure(self):
        wall, cpu = clock()
        self._run(self.config.matmul_count)
        wall_end, cpu_end = clock()
        return 2 * self.config.matmul_size ** 3 * self.config.matmul_count, wall_end - wall, cpu_end - cpu
