"""The run directory: who may write it, whether a run may resume in it, and what a run writes there.

    workdir.check_writable(config.workdir)
    workdir.check_resumable(config)                  # UserError when the stored run built another model
    with workdir.hold(config.workdir, worker):      # the lock; then removes what killed runs half-wrote
        workdir.write_config(config, resolved)       # config.json
        workdir.write_hparams(config, resolved)      # events.* in the workdir: the run's row of HParams
        workdir.write_grid(config.workdir, step, grid)
        workdir.export_models(config.workdir, train_step)   # generator.keras, generator.json, discriminator.keras

What one run writes into its workdir:
    config.json                 the resolved configuration (precision, replicas, resolution, classes)
    checkpoints/ckpt-N.*        G, D, both optimizers, the step, the noise generator (cgan.training.step)
    events.*                    TensorBoard HParams: the options, written when the run starts (write_hparams)
    train/events.*              TensorBoard: losses, D's outputs, steps/s, grids, the config
    samples/step_NNNNNN.png     the fixed-noise grid, one row per class
    generator.keras, generator.json, discriminator.keras   the latest export (cgan.model.model_files)
    eval/                       evaluation reports (cgan.evaluation.evaluate)
"""

import contextlib
import os

import tensorflow as tf

from cgan.core import files, images

from cgan.model import model_files

from cgan.run import checkpoints, run_lock
from cgan.core.config import TrainConfig, model_fields, privacy_fields, state_fields
from cgan.core.errors import UserError

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "train"
SAMPLES_DIR = "samples"


# Options that say where things are, not how the run trains: left out of the HParams table.
_NOT_HPARAMS = ("workdir", "data_dir", "manual_dir")


def write_hparams(config, resolved):
    """Writes the run's options as a TensorBoard HParams session into the workdir itself.

    The workdir, not train/, holds it, so that the HParams dashboard's row of the run (`tensorboard
    --logdir` over several workdirs) takes its metrics from both train/ (losses, the in-training
    evaluation) and eval/ (cgan.evaluation.evaluate's reports): a screen of several runs reads as one table.
    Written when the run starts, not when it resumes, so a workdir holds one session. Its trial ID is
    the workdir as given, not its last folder: TensorBoard merges the sessions of one trial ID into one
    row, and runs side by side often end in the same folder (a screen's <set>/<variant>/seed0).

    Args:
        config: the TrainConfig.
        resolved: what the trainer resolved (resolved_precision, num_replicas, ...), as in config.json.
    """
    from tensorboard.plugins.hparams import api as hparams_api
    flat = {**config.to_dict(), **resolved}
    for name, value in list(flat.items()):
        if isinstance(value, dict):   # e.g. privacy: {noise_multiplier, ...} -> privacy.noise_multiplier
            flat.update({f"{name}.{key}": inner for key, inner in flat.pop(name).items()})
    values = {k: v for k, v in flat.items() if k not in _NOT_HPARAMS and isinstance(v, (bool, int, float, str))}
    with tf.summary.create_file_writer(config.workdir).as_default():
        hparams_api.hparams(values, trial_id=os.path.normpath(config.workdir))


def check_writable(workdir):
    """Creates the workdir if needed; UserError when it cannot be written."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise UserError(f"cannot write to --workdir={workdir} ({e.strerror}): choose a writable "
                        f"folder") from None


def check_resumable(config):
    """Refuses to resume a workdir whose stored config built a different model or checkpoint."""
    path = os.path.join(config.workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    stored = TrainConfig.from_json(path)
    for field in model_fields():
        old, new = getattr(stored, field), getattr(config, field)
        if old != new:
            raise UserError(f"{config.workdir} holds a run with --{field}={old}, not {new}: pass "
                            f"--{field}={old} to resume it, or a new --workdir to start another run")
    for field in state_fields():
        old, new = getattr(stored, field), getattr(config, field)
        if bool(old) != bool(new):
            raise UserError(f"{config.workdir} holds a run {'with' if old else 'without'} --{field}: pass "
                            f"--{field}={old} to resume it, or a new --workdir to start another run")
    if stored.private:
        for field in privacy_fields():
            old, new = getattr(stored, field), getattr(config, field)
            if old != new:
                raise UserError(f"{config.workdir} holds a private run with --{field}={old}, on which its privacy "
                                f"accounting rests: pass --{field}={old} to resume it, or a new --workdir")


@contextlib.contextmanager
def hold(workdir, worker):
    """Makes the chief the workdir's only writer for the block (other workers hold nothing).

    Holding the lock, the chief removes what killed runs half-wrote: our `.tmp<pid>_*` files and
    TensorFlow's interrupted checkpoint writes (cgan.core.files).
    """
    if not worker.is_chief:
        yield
        return
    with run_lock.hold(workdir):
        files.remove_stale_temporaries(workdir, os.path.join(workdir, CHECKPOINT_DIR))
        yield


def write_config(config, resolved):
    """Writes config.json (the options plus the values resolved at start); returns its text."""
    text = config.json_text(**resolved)
    files.atomic_write_bytes(os.path.join(config.workdir, CONFIG_FILE), text.encode())
    return text


def grid_path(workdir, step):
    return os.path.join(workdir, SAMPLES_DIR, f"step_{step:06d}.png")


def write_grid(workdir, step, grid):
    """Writes the [H, W, 3] uint8 fixed-noise grid of `step` into samples/."""
    images.write_png(grid_path(workdir, step), grid)


def export_info(train_step):
    """What travels with the exported generator (generator.json): enough to sample without the workdir."""
    step = int(train_step.step.numpy())
    info = {"class_names": list(train_step.class_names), "latent_dim": train_step.config.latent_dim,
            "resolution": train_step.resolution, "step": step,
            "precision": train_step.policy, "ema": train_step.ema is not None,
            "config": train_step.config.to_dict()}
    if train_step.privacy:
        info["privacy"] = train_step.privacy_plan.to_dict(steps=step)
    return info


def export_models(workdir, train_step):
    """Exports the sampling generator (the EMA one when there is one), D and generator.json."""
    model_files.save_models(workdir, train_step.sampling_generator, train_step.discriminator, export_info(train_step))


def has_export(workdir):
    return os.path.exists(os.path.join(workdir, model_files.GENERATOR_FILE))



def checkpoint_store(checkpoint, config, worker):
    """The run's CheckpointStore (cgan.run.checkpoints) in checkpoints/.

    Every worker takes part in saving (MultiWorkerMirroredStrategy needs it); only the chief's copy is
    kept and only the chief may move damaged checkpoints aside. The others save into a scratch
    folder that `close_checkpoint_store` removes.
    """
    directory = os.path.join(config.workdir, CHECKPOINT_DIR)
    scratch = None if worker.is_chief else os.path.join(config.workdir, f".worker{worker.index}_tmp")
    return checkpoints.CheckpointStore(checkpoint, directory, config.keep_checkpoints, save_dir=scratch,
                                       may_modify=worker.is_chief)


def close_checkpoint_store(store):
    if store.save_dir != store.directory:
        tf.io.gfile.rmtree(store.save_dir)
