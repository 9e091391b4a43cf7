"""The training loop: data, networks, a distributed GradientTape step, checkpoints, summaries, exports.

    from cgan import train
    from cgan.config import TrainConfig
    result = train.train_and_evaluate(TrainConfig(workdir="runs/demo", train_steps=3000))

What one run writes into its workdir:
    config.json                 the resolved configuration (precision, replicas, resolution, classes)
    checkpoints/ckpt-N.*        G, D, both optimizers, the step and the noise generator's state
    train/events.*              TensorBoard: d_loss, g_loss, d_real, d_fake, steps_per_sec, images, config
    samples/step_NNNNNN.png     the fixed-noise grid, one row per class
    generator.keras, generator.json, discriminator.keras   the latest export (see cgan.export)

Running the same command again restores the latest checkpoint and continues to --train_steps. The
data stream and the noise both continue where they stopped (the stream is a function of the step,
see cgan.input_pipeline; the noise comes from a checkpointed tf.random.Generator).

One step = one discriminator update on a real and a generated batch, then one generator update
through the updated discriminator on the same generated batch (one generator forward pass serves both
updates). Fake images use the real batch's labels, so both networks see classes in the data's
proportions.
"""

import dataclasses
import json
import os
import signal
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from cgan import (augment, datasets, ema, export, files, images, input_pipeline, losses, networks, optimizers,
                  precision, run_lock)
from cgan.config import MODEL_FIELDS, TrainConfig
from cgan.errors import UserError

CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "train"
SAMPLES_DIR = "samples"
GRID_COLUMNS = 8
_GRID_NOISE_SEED = 1234


@dataclasses.dataclass
class TrainResult:
    """What a finished (or stopped) run reports back."""
    step: int
    restored_step: int
    stopped_by_signal: bool
    metrics: dict


def configure_devices(config):
    """Splits the CPU into `cpu_replicas` logical devices; must run before TensorFlow starts."""
    if config.cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * config.cpu_replicas)


def make_strategy(config):
    """The tf.distribute strategy of --strategy; must exist before other TensorFlow work.

    mirrored: MirroredStrategy over every local GPU, or over the CPU (split into replicas when asked).
    multi_worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG.
    """
    if config.strategy == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError("--strategy=multi_worker needs TF_CONFIG describing the cluster and this "
                            "task, e.g. {\"cluster\": {\"worker\": [\"host1:2222\", \"host2:2222\"]}, "
                            "\"task\": {\"type\": \"worker\", \"index\": 0}}")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if config.strategy != "mirrored":
        raise UserError(f"unknown --strategy={config.strategy}: use mirrored or multi_worker")
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")][:max(config.cpu_replicas, 1)]
    return tf.distribute.MirroredStrategy(devices=cpus)


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """Where this process sits in the cluster (one worker, index 0, chief, without multi-worker)."""
    num_workers: int = 1
    index: int = 0

    @property
    def is_chief(self):
        return self.index == 0


def worker_info(strategy):
    """Reads the worker count and this worker's index from a MultiWorkerMirroredStrategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().jobs:
        return WorkerInfo()
    spec = resolver.cluster_spec()
    tasks = [("chief", i) for i in range(spec.num_tasks("chief") if "chief" in spec.jobs else 0)]
    tasks += [("worker", i) for i in range(spec.num_tasks("worker") if "worker" in spec.jobs else 0)]
    return WorkerInfo(num_workers=len(tasks), index=tasks.index((resolver.task_type, resolver.task_id)))


def grid_noise(num_columns, latent_dim):
    """The fixed noise of the image grids: column j uses the same z in every class row."""
    return tf.random.stateless_normal([num_columns, latent_dim], seed=[_GRID_NOISE_SEED, 0])


def generate_grid(generator, num_classes, latent_dim, columns=GRID_COLUMNS):
    """Generates the [num_classes·R, columns·R, 3] uint8 grid: row c shows class c."""
    z = tf.tile(grid_noise(columns, latent_dim), [num_classes, 1])           # [C·cols, latent]
    labels = tf.repeat(tf.range(num_classes, dtype=tf.int32), columns)       # [C·cols]
    generated = generator([z, labels], training=False)                       # [C·cols, R, R, 3]
    return images.image_grid(images.to_uint8(generated), rows=num_classes)


def check_resumable(config, workdir):
    """Refuses to resume a workdir whose stored config built a different model."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    stored = TrainConfig.from_json(path)
    for field in MODEL_FIELDS:
        old, new = getattr(stored, field), getattr(config, field)
        if old != new:
            raise UserError(f"{workdir} holds a run with --{field}={old}, not {new}: pass --{field}={old} "
                            f"to resume it, or a new --workdir to start another run")
    if (stored.ema_decay > 0) != (config.ema_decay > 0):
        raise UserError(f"{workdir} holds a run {'with' if stored.ema_decay > 0 else 'without'} an EMA "
                        f"generator: pass --ema_decay={stored.ema_decay} to resume it, or a new --workdir "
                        f"to start another run")


class _StopRequest:
    """Turns SIGTERM/SIGINT into a flag the loop checks between tf.function calls."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        del frame
        if self.signal_name is not None:  # a second signal: stop waiting, stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        logging.warning("%s received: saving a checkpoint at the end of this call, then exiting",
                        self.signal_name)

    @property
    def requested(self):
        return self.signal_name is not None


class Trainer:
    """Holds the networks, optimizers and the compiled multi-step function of one run."""

    def __init__(self, config, strategy, policy, class_names, resolution, worker=WorkerInfo()):
        self.config = config
        self.strategy = strategy
        self.worker = worker
        self.policy = policy
        self.class_names = tuple(class_names)
        try:
            self.augment_policy = augment.parse_policy(config.augment)
        except ValueError as e:
            raise UserError(f"--augment={config.augment}: {e}") from None
        self.resolution = resolution
        num_classes = len(self.class_names)
        synchronized = strategy.num_replicas_in_sync > 1
        with strategy.scope():
            try:
                self.generator = networks.build_generator(
                    resolution, config.latent_dim, num_classes, dtype=policy, synchronized_bn=synchronized,
                    conditioning=config.g_conditioning, spectral_norm=config.g_spectral_norm,
                    attention_resolution=config.g_attention)
                self.discriminator = networks.build_discriminator(
                    resolution, num_classes, dtype=policy, synchronized_bn=synchronized,
                    conditioning=config.d_conditioning, norm=config.d_norm,
                    attention_resolution=config.d_attention)
            except ValueError as e:
                raise UserError(f"{e} (check the architecture flags)") from None
            if config.loss not in losses.LOSSES:
                raise UserError(f"unknown --loss={config.loss}: choose one of {', '.join(losses.LOSSES)}")
            self.g_optimizer = self._make_optimizer()
            self.d_optimizer = self._make_optimizer()
            # Built eagerly: an optimizer first built inside strategy.run in a tf.function fails.
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.ema = (ema.GeneratorEMA(self.generator, config.ema_decay, config.ema_start)
                        if config.ema_decay else None)
        if config.d_norm != "batch":
            # D then has Conv2D + bias + LeakyReLU, whose fusion makes TensorFlow 2.21's remapper fail
            # on the gradient graph ("remapper failed: ... LeakyReluGrad exist for missing node
            # BiasAdd"), printed as an error and the pass dropped for the whole function. Skipping
            # the pass gives the same graph without the alarming line.
            tf.config.optimizer.set_experimental_options({"remapping": False})
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.noise = tf.random.Generator.from_seed(config.seed)
        tracked = {"ema_generator": self.ema.model} if self.ema else {}
        self.checkpoint = tf.train.Checkpoint(step=self.step, generator=self.generator,
                                              discriminator=self.discriminator,
                                              g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer,
                                              noise=self.noise, **tracked)
        self._train_fn = tf.function(self._train_steps, reduce_retracing=True)

    def _make_optimizer(self):
        optimizer = optimizers.FusedAdam(self.config.learning_rate, beta_1=self.config.beta_1,
                                         beta_2=self.config.beta_2)
        return precision.wrap_optimizer(optimizer, self.policy)

    @property
    def sampling_generator(self):
        """The generator to sample, evaluate and export: the EMA one when there is one."""
        return self.ema.model if self.ema else self.generator

    def _augment(self, images, params):
        """D's view of a batch: DiffAugment when --augment is set, the images themselves otherwise."""
        return augment.diff_augment(images, params, self.augment_policy) if self.augment_policy else images

    def _replica_step(self, images, labels, z, aug):
        """One D and one G update on this replica's slice, from one generator forward pass.

        The generated batch serves both updates: D learns to reject it, then G is pushed through the
        updated D with the same images. The generator's weights do not change in between, so its
        forward pass (recorded by the outer tape while the D update is kept off it) is still the one
        G's gradient needs.

        Shapes: images [b, R, R, 3], labels [b], z [b, latent], aug [3, b, augment.NUM_PARAMS].
        """
        batch = self.config.batch_size
        fake_labels = labels
        if self.config.mode_seeking:  # pairs (i, i + b/2) share a label and differ in z
            half = tf.shape(labels)[0] // 2
            fake_labels = tf.concat([labels[:half], labels[:half], labels[2 * half:]], axis=0)
        with tf.GradientTape() as g_tape:
            fake = self.generator([z, fake_labels], training=True)                        # [b, R, R, 3]
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    real_logits = self.discriminator([self._augment(images, aug[0]), labels],
                                                     training=True)                      # [b, 1]
                    fake_logits = self.discriminator([self._augment(tf.stop_gradient(fake), aug[1]),
                                                      fake_labels], training=True)
                    d_loss = losses.discriminator_loss(real_logits, fake_logits, batch, kind=self.config.loss)
                    d_total = d_loss
                    if self.config.r1_gamma:
                        r1 = losses.r1_penalty(self.discriminator, images, labels, batch,
                                               augment=lambda x: self._augment(x, aug[0]))
                        d_total += self.config.r1_gamma / 2 * r1
                    scaled = precision.scale_loss(self.d_optimizer, d_total)
                variables = self.discriminator.trainable_variables
                self.d_optimizer.apply_gradients(zip(d_tape.gradient(scaled, variables), variables))
            g_logits = self.discriminator([self._augment(fake, aug[2]), fake_labels], training=True)
            g_loss = losses.generator_loss(g_logits, batch, kind=self.config.loss)
            if self.config.mode_seeking:
                g_loss += self.config.mode_seeking * losses.mode_seeking_loss(
                    fake, z, self.strategy.num_replicas_in_sync)
            scaled = precision.scale_loss(self.g_optimizer, g_loss)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(scaled, variables), variables))

        d_real = tf.reduce_mean(tf.sigmoid(tf.cast(real_logits, tf.float32)))
        d_fake = tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32)))
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}

    def _sliced_step(self, images, labels, z, aug):
        """Runs in each replica: keeps this replica's rows of the worker's batch, then steps."""
        local_replicas = self.strategy.num_replicas_in_sync // self.worker.num_workers
        per_replica = self.config.batch_size // self.strategy.num_replicas_in_sync
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        local = replica - self.worker.index * local_replicas
        rows = slice(local * per_replica, (local + 1) * per_replica)
        return self._replica_step(images[rows], labels[rows], z[rows], aug[:, rows])

    def _worker_rows(self, values):
        """This worker's rows of a tensor over the global batch (axis 0 for [GB, ...])."""
        per_worker = self.config.batch_size // self.worker.num_workers
        return values[self.worker.index * per_worker:(self.worker.index + 1) * per_worker]

    def _worker_noise(self):
        """This worker's rows of the global batch's noise: [GB / workers, latent]."""
        return self._worker_rows(self.noise.normal([self.config.batch_size, self.config.latent_dim]))

    def _worker_augment_params(self):
        """[3, GB / workers, NUM_PARAMS]: real and fake for the D update, fake for the G update."""
        if not self.augment_policy:
            return tf.zeros([3, self.config.batch_size // self.worker.num_workers, augment.NUM_PARAMS])
        params = [self._worker_rows(augment.random_params(self.noise, self.config.batch_size)) for _ in range(3)]
        return tf.stack(params)

    def _train_steps(self, iterator, num_steps):
        """Runs num_steps steps in one call; returns the last step's metrics (global means)."""
        metrics = {name: tf.constant(0.0) for name in ("d_loss", "g_loss", "d_real", "d_fake")}
        for _ in tf.range(num_steps):
            images, labels = next(iterator)                   # [GB / workers, R, R, 3], [GB / workers]
            z = self._worker_noise()
            aug = self._worker_augment_params()
            per_replica = self.strategy.run(self._sliced_step, args=(images, labels, z, aug))
            if self.ema:
                self.ema.update(self.step)
            metrics = {
                "d_loss": self.strategy.reduce("SUM", per_replica["d_loss"], axis=None),
                "g_loss": self.strategy.reduce("SUM", per_replica["g_loss"], axis=None),
                "d_real": self.strategy.reduce("MEAN", per_replica["d_real"], axis=None),
                "d_fake": self.strategy.reduce("MEAN", per_replica["d_fake"], axis=None),
            }
            self.step.assign_add(1)
        return metrics

    def run_steps(self, iterator, num_steps):
        """Runs num_steps steps; returns the metrics of the last one as Python floats."""
        metrics = self._train_fn(iterator, tf.constant(num_steps, tf.int64))
        return {name: float(value) for name, value in metrics.items()}

    def any_worker(self, flag):
        """True on every worker when flag is True on any (so all workers stop at the same step)."""
        if self.worker.num_workers == 1:
            return flag
        votes = self.strategy.run(lambda: tf.constant(float(flag)))
        return float(self.strategy.reduce("SUM", votes, axis=None)) > 0

    def weights_finite(self):
        """False when any weight of either network is NaN or infinite."""
        variables = self.generator.variables + self.discriminator.variables
        return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables)

    def grid(self):
        return generate_grid(self.sampling_generator, len(self.class_names), self.config.latent_dim)

    def export_info(self):
        return {"class_names": list(self.class_names), "latent_dim": self.config.latent_dim,
                "resolution": self.resolution, "step": int(self.step.numpy()),
                "precision": self.policy, "ema": self.ema is not None, "config": self.config.to_dict()}


def _format_duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _next_boundary(step, config):
    """The next step at which something is written (summary, grid, checkpoint) or the run ends."""
    candidates = [config.train_steps, step + config.steps_per_call]
    for every in (config.summary_every, config.image_every, config.checkpoint_every, config.eval_every):
        if not every:
            continue
        candidates.append((step // every + 1) * every)
    return min(candidates)


def _write_config(config, workdir, resolved):
    config.to_json(os.path.join(workdir, "config.json"), **resolved)
    return json.dumps({**config.to_dict(), **resolved}, indent=2, sort_keys=True)


def _check_writable(workdir):
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise UserError(f"cannot write to --workdir={workdir} ({e.strerror}): choose a writable "
                        f"folder") from None


def train_and_evaluate(config):
    """Trains (or resumes) the run described by config; returns a TrainResult.

    Raises:
        UserError: bad configuration, data or workdir, with the fix in the message.
    """
    strategy = make_strategy(config)  # first: MultiWorkerMirroredStrategy must precede other TF work
    worker = worker_info(strategy)
    _check_writable(config.workdir)
    check_resumable(config, config.workdir)
    if not worker.is_chief:  # the chief holds the lock for the whole cluster
        return _train(config, strategy, worker)
    with run_lock.hold(config.workdir):
        # Holding the lock, the chief is the workdir's only writer: what a killed run half-wrote can go.
        files.remove_stale_temporaries(config.workdir, os.path.join(config.workdir, CHECKPOINT_DIR))
        return _train(config, strategy, worker)


def _train(config, strategy, worker):
    workdir = config.workdir
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    policy = precision.resolve(config.precision)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UserError(f"--batch_size={config.batch_size} cannot be split over {replicas} replicas: "
                        f"use a multiple of {replicas}")

    builder = datasets.prepare(config.dataset, config.data_dir, config.manual_dir)
    class_names = datasets.class_names(builder)
    train_images, train_labels = input_pipeline.load_split(builder, "train")
    resolution = int(train_images.shape[1])
    logging.info("Dataset %s: %d training images at %dx%d, %d classes; %d replica(s) on %d worker(s), %s",
                 builder.info.full_name, len(train_images), resolution, resolution, len(class_names),
                 replicas, worker.num_workers, policy)

    trainer = Trainer(config, strategy, policy, class_names, resolution, worker)
    checkpoint_dir = os.path.join(workdir, CHECKPOINT_DIR)
    # Every worker takes part in saving; only the chief's copy is kept.
    save_dir = checkpoint_dir if worker.is_chief else os.path.join(workdir, f".worker{worker.index}_tmp")
    manager = tf.train.CheckpointManager(trainer.checkpoint, save_dir, max_to_keep=config.keep_checkpoints)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    restored_step = 0
    if latest:
        trainer.checkpoint.restore(latest).assert_existing_objects_matched()
        restored_step = int(trainer.step.numpy())
        logging.info("Restored step %d from %s", restored_step, latest)
    else:
        logging.info("No checkpoint in %s: starting at step 0", checkpoint_dir)

    if worker.is_chief:
        resolved = {"resolved_precision": policy, "num_replicas": replicas, "num_workers": worker.num_workers,
                    "resolution": resolution, "class_names": list(class_names),
                    "num_train_images": len(train_images)}
        config_text = _write_config(config, workdir, resolved)
        writer = tf.summary.create_file_writer(os.path.join(workdir, SUMMARY_DIR))
        with writer.as_default(step=restored_step):
            tf.summary.text("config", f"```\n{config_text}\n```")
    else:
        writer = tf.summary.create_noop_writer()

    def save(step):
        if not trainer.weights_finite():
            raise UserError(f"non-finite weights at step {step}: training diverged; the last good checkpoint "
                            f"and export in {workdir} are kept — lower --learning_rate or use "
                            f"--precision=float32 and rerun")
        manager.save(checkpoint_number=step)
        if worker.is_chief:
            export.save_models(workdir, trainer.sampling_generator, trainer.discriminator, trainer.export_info())

    def write_grid(step):
        if not worker.is_chief:
            return
        grid = trainer.grid()
        images.write_png(os.path.join(workdir, SAMPLES_DIR, f"step_{step:06d}.png"), grid)
        with writer.as_default(step=step):
            tf.summary.image("samples", grid[None], max_outputs=1)

    evaluator = None
    if config.eval_every and worker.is_chief:
        from cgan import evaluate  # imports the metric models only when evaluation is asked for
        evaluator = evaluate.Evaluator(builder, class_names, resolution, num_per_class=config.eval_num_per_class,
                                       seed=config.seed, inception_weights=config.inception_weights)

    def run_evaluation(step):
        if evaluator is None:
            return
        started = time.perf_counter()
        values = evaluator.evaluate(trainer.sampling_generator, config.latent_dim)
        evaluate.write_scalars(writer, values, step)
        shown = "  ".join(f"{k} {values[k]:.4g}" for k in ("cas", "classifier_fd", "fid") if k in values)
        logging.info("eval at step %d: %s  (%.1f s)", step, shown, time.perf_counter() - started)

    step = restored_step
    if step >= config.train_steps:
        logging.info("Step %d already reaches --train_steps=%d: nothing to train", step, config.train_steps)
        if worker.is_chief and not os.path.exists(os.path.join(workdir, export.GENERATOR_FILE)):
            export.save_models(workdir, trainer.sampling_generator, trainer.discriminator, trainer.export_info())
        return TrainResult(step, restored_step, False, {})

    dataset = input_pipeline.train_dataset(train_images, train_labels, config.batch_size, config.seed,
                                           start_step=step, num_workers=worker.num_workers,
                                           worker_index=worker.index, balanced=config.balanced)
    iterator = iter(dataset)
    metrics = {}
    stopped = False
    interval_start, interval_steps = None, 0
    with _StopRequest() as stop:
        while step < config.train_steps:
            stopped = trainer.any_worker(stop.requested)
            if stopped:
                break
            num_steps = _next_boundary(step, config) - step
            metrics = trainer.run_steps(iterator, num_steps)
            step += num_steps
            if interval_start is None:  # the first call includes tracing: start timing after it
                interval_start, interval_steps = time.perf_counter(), 0
            else:
                interval_steps += num_steps
            if not all(np.isfinite(v) for v in metrics.values()):
                raise UserError(f"non-finite loss at step {step} ({metrics}): training diverged; the last "
                                f"good checkpoint and export in {workdir} are intact — lower "
                                f"--learning_rate or use --precision=float32 and rerun")
            end = step >= config.train_steps
            if step % config.summary_every == 0 or end:
                elapsed = time.perf_counter() - interval_start
                rate = interval_steps / elapsed if interval_steps and elapsed > 0 else float("nan")
                with writer.as_default(step=step):
                    for name, value in metrics.items():
                        tf.summary.scalar(name, value)
                    if np.isfinite(rate):
                        tf.summary.scalar("steps_per_sec", rate)
                eta = _format_duration((config.train_steps - step) / rate) if np.isfinite(rate) else "?"
                if worker.is_chief:
                    logging.info("step %d/%d  d_loss %.4f  g_loss %.4f  D(real) %.3f  D(fake) %.3f  "
                                 "%.2f steps/s  ETA %s", step, config.train_steps, metrics["d_loss"],
                                 metrics["g_loss"], metrics["d_real"], metrics["d_fake"], rate, eta)
                interval_start, interval_steps = time.perf_counter(), 0
            if step % config.image_every == 0 or end:
                write_grid(step)
            if config.eval_every and (step % config.eval_every == 0 or end):
                run_evaluation(step)
            if step % config.checkpoint_every == 0 or end:
                save(step)
        if stopped:
            save(step)
            logging.warning("Stopped by %s at step %d; checkpoint and export saved. Rerun the same "
                            "command to resume.", stop.signal_name or "a signal on another worker", step)
    writer.flush()
    if not worker.is_chief:
        tf.io.gfile.rmtree(save_dir)
    return TrainResult(step, restored_step, stopped, metrics)
