"""The training loop: data in, compiled steps, and at set steps a summary, a grid, an evaluation, a checkpoint.

    from cgan import train
    from cgan.core.config import TrainConfig
    result = train.train_and_evaluate(TrainConfig(workdir="runs/demo", train_steps=3000))

Running the same config again restores the latest checkpoint and continues to `train_steps`. The data
stream and the noise both continue where they stopped: the stream is a function of the step
(cgan.inputs.input_pipeline), the noise comes from a checkpointed generator (cgan.training.step). What the workdir
holds is listed in cgan.run.workdir; the step's math is in cgan.training.step.
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf
from absl import logging

from cgan.inputs import datasets, input_pipeline

from cgan.model import sampling

from cgan.run import signals, workdir

from cgan.training import distribute, precision, privacy, step
from cgan.core.errors import UserError


@dataclasses.dataclass
class TrainResult:
    """What a finished (or stopped) run reports back."""
    step: int
    restored_step: int
    stopped_by_signal: bool
    metrics: dict


@dataclasses.dataclass
class _Run:
    """What the loop's writers share: the config, the step's state, and where things go."""
    config: object
    worker: distribute.WorkerInfo
    train_step: step.TrainStep
    store: object               # cgan.run.checkpoints.CheckpointStore
    writer: object
    evaluator: object = None


def train_and_evaluate(config):
    """Trains (or resumes) the run described by config; returns a TrainResult.

    Raises:
        UserError: bad configuration, data or workdir, with the fix in the message.
    """
    distribute.configure_devices(config)
    strategy = distribute.make_strategy(config)  # first: MultiWorkerMirroredStrategy must precede other TF work
    worker = distribute.worker_info(strategy)
    workdir.check_writable(config.workdir)
    workdir.check_resumable(config)
    with workdir.hold(config.workdir, worker):
        return _train(config, strategy, worker)


def _train(config, strategy, worker):
    distribute.configure_tensorflow(config)
    distribute.check_batch_size(config, strategy)
    policy = precision.resolve(config.precision)
    builder = datasets.prepare(config.dataset, config.data_dir, config.manual_dir)
    class_names = datasets.class_names(builder)
    train_split = input_pipeline.open_split(builder, "train", config.input, config.input_memory_budget)
    resolution = train_split.resolution
    logging.info("Dataset %s: %d training images at %dx%d, %d classes, input %s; %d replica(s) on %d worker(s), %s",
                 builder.info.full_name, train_split.num_examples, resolution, resolution, len(class_names),
                 train_split.mode, strategy.num_replicas_in_sync, worker.num_workers, policy)

    class_counts = train_split.class_counts(len(class_names)) if config.private else None
    real_examples = train_split.examples() if config.coverage else None
    train_step = step.TrainStep(config, strategy, policy, class_names, resolution, worker, class_counts,
                                real_examples)
    store = workdir.checkpoint_store(train_step.checkpoint, config, worker)
    store.restore()   # the newest readable checkpoint, if any; it says which
    restored_step = int(train_step.step.numpy())
    resolved = {"resolved_precision": policy, "resolved_jit_compile": train_step.jit_compile,
                "num_replicas": strategy.num_replicas_in_sync,
                "num_workers": worker.num_workers, "resolution": resolution, "class_names": list(class_names),
                "num_train_images": train_split.num_examples, "resolved_input": train_split.mode}
    if config.private:
        plan = train_step.start_privacy(train_split.num_examples)
        resolved["privacy"] = plan.to_dict()
        logging.info("Differential privacy: (ε = %.4g, δ = %.3g) over %d steps; noise multiplier σ = %.4g, each "
                     "real image in a step with probability q = %.4g, clip %g (%s accountant)",
                     privacy.epsilon_spent(plan, config.train_steps), plan.delta, config.train_steps,
                     plan.noise_multiplier, plan.sampling_rate, plan.clip, privacy.ACCOUNTANT)
    run = _Run(config, worker, train_step, store, _open_writer(config, worker, resolved, restored_step))
    if restored_step >= config.train_steps:
        logging.info("Step %d already reaches --train_steps=%d: nothing to train", restored_step,
                     config.train_steps)
        if worker.is_chief and not workdir.has_export(config.workdir):
            workdir.export_models(config.workdir, train_step)
        return TrainResult(restored_step, restored_step, False, {})
    if config.eval_every and worker.is_chief:
        from cgan.evaluation import evaluate  # imports the metric models only when evaluation is asked for
        # CAS trains a classifier on generated images at every evaluation: for the report
        # (python -m cgan.evaluate), not for the curves.
        run.evaluator = evaluate.Evaluator(builder, class_names, resolution, num_per_class=config.eval_num_per_class,
                                           seed=config.seed, inception_weights=config.inception_weights,
                                           train_cas=False)

    if config.private:
        dataset = train_split.poisson_dataset(plan.sampling_rate, train_step.privacy.sampling_seed, restored_step,
                                              config.mirror)
    else:
        dataset = train_split.dataset(config.batch_size, config.seed, start_step=restored_step,
                                      num_workers=worker.num_workers, worker_index=worker.index,
                                      balanced=config.balanced, mirror=config.mirror, pack=config.pack)
    with signals.StopRequest() as stop:
        last_step, metrics, stopped = _loop(run, iter(dataset), restored_step, stop)
    run.writer.flush()
    workdir.close_checkpoint_store(store)
    return TrainResult(last_step, restored_step, stopped, metrics)


def _loop(run, iterator, step_number, stop):
    """Steps from `step_number` to --train_steps, writing at every boundary; returns (step, metrics, stopped)."""
    config = run.config
    metrics, rate = {}, _Rate()
    while step_number < config.train_steps:
        if distribute.any_worker(run.train_step.strategy, run.worker, stop.requested):
            _save(run, step_number)
            logging.warning("Stopped by %s at step %d; checkpoint and export saved. Rerun the same command "
                            "to resume.", stop.signal_name or "a signal on another worker", step_number)
            return step_number, metrics, True
        if run.train_step.coverage_due():
            _refresh_coverage(run, step_number)
        num_steps = _next_boundary(step_number, config) - step_number
        metrics = run.train_step.run_steps(iterator, num_steps)
        step_number += num_steps
        rate.count(num_steps)
        if not all(np.isfinite(v) for v in metrics.values()):
            raise UserError(f"non-finite loss at step {step_number} ({metrics}): training diverged; the last "
                            f"good checkpoint and export in {config.workdir} are intact — lower "
                            f"--learning_rate or use --precision=float32 and rerun")
        end = step_number >= config.train_steps
        if end or step_number % config.summary_every == 0:
            _log_progress(run, step_number, metrics, rate.read())
        if end or step_number % config.image_every == 0:
            _write_grid(run, step_number)
        if run.evaluator and (end or step_number % config.eval_every == 0):
            _evaluate(run, step_number)
        if end or step_number % config.checkpoint_every == 0:
            _save(run, step_number)
    return step_number, metrics, False


def _next_boundary(step_number, config):
    """The next step at which something is written (summary, grid, evaluation, checkpoint) or the run ends."""
    candidates = [config.train_steps, step_number + config.steps_per_call]
    for every in (config.summary_every, config.image_every, config.checkpoint_every, config.eval_every,
                  config.coverage and config.coverage_every):
        if every:
            candidates.append((step_number // every + 1) * every)
    return min(candidates)


class _Rate:
    """Steps per second since the last reading; the first call (tracing) is not timed."""

    def __init__(self):
        self.start, self.steps = None, 0

    def count(self, num_steps):
        if self.start is None:
            self.start = time.perf_counter()
        else:
            self.steps += num_steps

    def read(self):
        elapsed = time.perf_counter() - self.start
        rate = self.steps / elapsed if self.steps and elapsed > 0 else float("nan")
        self.start, self.steps = time.perf_counter(), 0
        return rate


def _open_writer(config, worker, resolved, step_number):
    """The chief writes config.json and TensorBoard events; other workers write nothing."""
    if not worker.is_chief:
        return tf.summary.create_noop_writer()
    config_text = workdir.write_config(config, resolved)
    if step_number == 0:
        workdir.write_hparams(config, resolved)
    writer = tf.summary.create_file_writer(f"{config.workdir}/{workdir.SUMMARY_DIR}")
    with writer.as_default(step=step_number):
        tf.summary.text("config", f"```\n{config_text}```")
    return writer


def _log_progress(run, step_number, metrics, rate):
    config = run.config
    spent = privacy.epsilon_spent(run.train_step.privacy_plan, step_number) if config.private else None
    with run.writer.as_default(step=step_number):
        for name, value in metrics.items():
            tf.summary.scalar(name, value)
        if np.isfinite(rate):
            tf.summary.scalar("steps_per_sec", rate)
        if spent is not None:
            tf.summary.scalar("privacy/epsilon", spent)
    if run.worker.is_chief:
        eta = _format_duration((config.train_steps - step_number) / rate) if np.isfinite(rate) else "?"
        logging.info("step %d/%d  d_loss %.4f  g_loss %.4f  D(real) %.3f  D(fake) %.3f  %.2f steps/s  ETA %s%s",
                     step_number, config.train_steps, metrics["d_loss"], metrics["g_loss"], metrics["d_real"],
                     metrics["d_fake"], rate, eta, "" if spent is None else f"  ε {spent:.4g}")


def _write_grid(run, step_number):
    if not run.worker.is_chief:
        return
    train_step = run.train_step
    grid = sampling.class_grid(train_step.sampling_generator, len(train_step.class_names), run.config.latent_dim)
    workdir.write_grid(run.config.workdir, step_number, grid)
    with run.writer.as_default(step=step_number):
        tf.summary.image("samples", grid[None], max_outputs=1)


def _refresh_coverage(run, step_number):
    """Refreshes --coverage's pool before the steps from step_number; logs its cost and how near it came."""
    started = time.perf_counter()
    nearest = run.train_step.refresh_coverage()
    seconds = time.perf_counter() - started
    with run.writer.as_default(step=step_number):
        tf.summary.scalar("coverage/nearest_distance", nearest)
        tf.summary.scalar("coverage/refresh_seconds", seconds)
    if run.worker.is_chief:
        logging.info("coverage pool refreshed at step %d: %d candidates, real images' mean distance to their "
                     "nearest %.4f (%.1f s)", step_number, run.train_step.coverage.pool_size, nearest, seconds)


def _evaluate(run, step_number):
    from cgan.evaluation import evaluate
    started = time.perf_counter()
    values = run.evaluator.evaluate(run.train_step.sampling_generator, run.config.latent_dim)
    evaluate.write_metrics(run.writer, values, step_number)
    shown = "  ".join(f"{k} {values[k]:.4g}" for k in ("gan_test", "classifier_fd", "classifier_fd_ratio",
                                                        "classifier_coverage_class_min",
                                                        "structure_diversity_ratio_class_min",
                                                        "assigned_elsewhere_class_max", "fid") if k in values)
    logging.info("eval at step %d: %s  (%.1f s)", step_number, shown, time.perf_counter() - started)


def _save(run, step_number):
    """Checkpoints every worker's state and exports the models; never saves diverged weights."""
    if not run.train_step.weights_finite():
        raise UserError(f"non-finite weights at step {step_number}: training diverged; the last good checkpoint "
                        f"and export in {run.config.workdir} are kept — lower --learning_rate or use "
                        f"--precision=float32 and rerun")
    run.store.save(step_number)
    if run.worker.is_chief:
        workdir.export_models(run.config.workdir, run.train_step)


def _format_duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
