"""Trains the conditional GAN.

    python trainer.py --flagfile=demo.flags                 # embedded synthetic data, ~10 min on 2 CPU cores
    python trainer.py --flagfile=p100.flags --manual_dir=/path/to/ISIC   # the seed's setup on real data
    python trainer.py --flagfile=p100.flags --train_steps=200000         # later flags win

Rerunning the same command resumes from the workdir's last checkpoint. All logic is in cgan/.
"""

import dataclasses
import sys

from absl import app, flags, logging

from cgan.config import (DISCRIMINATOR_CONDITIONINGS, DISCRIMINATOR_NORMS, GENERATOR_CONDITIONINGS, LOSSES,
                         TrainConfig)
from cgan.errors import UserError
from cgan.precision import PRECISIONS

_DEFAULTS = TrainConfig(workdir="")

flags.DEFINE_string("workdir", None, "Run directory: checkpoints, TensorBoard events, samples, exports.")
flags.DEFINE_string("dataset", _DEFAULTS.dataset,
                    "isic_skin_cancer/<config>: synthetic_64|128|256 (embedded, no download), "
                    "real_64|128|256 (ISIC folders in --manual_dir), folders_64|128|256 (any class folders).")
flags.DEFINE_string("data_dir", _DEFAULTS.data_dir, "TFDS data directory; empty = ~/tensorflow_datasets.")
flags.DEFINE_string("manual_dir", _DEFAULTS.manual_dir,
                    "Folder with the Train/ and Test/ class folders (real_* and folders_* datasets).")
flags.DEFINE_integer("train_steps", _DEFAULTS.train_steps, "Total steps (one D + one G update each).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size in images, split over replicas.",
                     lower_bound=1)
flags.DEFINE_integer("latent_dim", _DEFAULTS.latent_dim, "Size of the noise vector z.", lower_bound=1)
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam learning rate of both networks.",
                   lower_bound=0.0)
flags.DEFINE_float("beta_1", _DEFAULTS.beta_1, "Adam beta_1.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("beta_2", _DEFAULTS.beta_2, "Adam beta_2.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_enum("precision", _DEFAULTS.precision, PRECISIONS,
                  "Numeric precision; auto = fastest safe choice for the device.")
flags.DEFINE_string("augment", _DEFAULTS.augment,
                    "Differentiable augmentation of D's real and fake inputs (DiffAugment): a comma-separated "
                    "subset of color,translation,cutout; empty = none (the seed).")
flags.DEFINE_float("mode_seeking", _DEFAULTS.mode_seeking,
                   "Weight of the mode-seeking regulariser that stops G from ignoring its noise within a "
                   "class (Mao et al., 2019); 0 = off (the seed).", lower_bound=0.0)
flags.DEFINE_enum("loss", _DEFAULTS.loss, LOSSES,
                  "GAN loss: bce (the seed: D binary cross-entropy, G non-saturating) or hinge.")
flags.DEFINE_float("r1_gamma", _DEFAULTS.r1_gamma,
                   "R1 penalty on D: γ/2 · E‖∇ₓD(x)‖² at real images (Mescheder et al., 2018); 0 = off.",
                   lower_bound=0.0)
flags.DEFINE_float("ema_decay", _DEFAULTS.ema_decay,
                   "Keep an exponential moving average of G's weights with this decay (e.g. 0.999) and use it "
                   "for grids, evaluation, export and sample.py; 0 = off.", lower_bound=0.0, upper_bound=0.99999)
flags.DEFINE_integer("ema_start", _DEFAULTS.ema_start, "Steps during which the EMA just copies G.",
                     lower_bound=0)
flags.DEFINE_bool("balanced", _DEFAULTS.balanced,
                  "Draw every class equally often (rare classes repeat more); default: the data's proportions.")
flags.DEFINE_enum("g_conditioning", _DEFAULTS.g_conditioning, GENERATOR_CONDITIONINGS,
                  "How G takes the label: concat (the seed: z ⊕ embedding) or cbn (conditional batch norm).")
flags.DEFINE_bool("g_spectral_norm", _DEFAULTS.g_spectral_norm, "Spectral normalisation of G's layers.")
flags.DEFINE_integer("g_attention", _DEFAULTS.g_attention,
                     "Self-attention in G after the block of this side, e.g. 32; 0 = none.", lower_bound=0)
flags.DEFINE_enum("d_conditioning", _DEFAULTS.d_conditioning, DISCRIMINATOR_CONDITIONINGS,
                  "How D takes the label: concat (the seed: a label plane) or projection.")
flags.DEFINE_enum("d_norm", _DEFAULTS.d_norm, DISCRIMINATOR_NORMS,
                  "D's normalisation: batch (the seed), spectral (spectral norm, no batch norm) or none.")
flags.DEFINE_integer("d_attention", _DEFAULTS.d_attention,
                     "Self-attention in D after the block of this side, e.g. 32; 0 = none.", lower_bound=0)
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of weights, data order and noise.", lower_bound=0)
flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every,
                     "Steps between checkpoints (and model exports).", lower_bound=1)
flags.DEFINE_integer("summary_every", _DEFAULTS.summary_every,
                     "Steps between TensorBoard scalars and progress lines.", lower_bound=1)
flags.DEFINE_integer("image_every", _DEFAULTS.image_every, "Steps between image grids.", lower_bound=1)
flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every,
                     "Steps between quality evaluations (CAS, classifier FD/KID, precision/recall; FID/KID "
                     "with Inception weights), logged to TensorBoard under eval/. 0 = never. Cost on 2 CPU "
                     "cores: ~2 s per evaluation at 50 images per class without Inception, ~40 s with it, "
                     "plus ~50 s once per dataset to train the evaluation classifier.", lower_bound=0)
flags.DEFINE_integer("eval_num_per_class", _DEFAULTS.eval_num_per_class,
                     "Generated images per class in each evaluation.", lower_bound=2)
flags.DEFINE_string("inception_weights", _DEFAULTS.inception_weights,
                    "Inception-v3 weights for FID/KID: imagenet (downloaded when possible), none, or the "
                    "path of a local no-top weights file.")
flags.DEFINE_integer("keep_checkpoints", _DEFAULTS.keep_checkpoints, "Checkpoints kept on disk.",
                     lower_bound=1)
flags.DEFINE_integer("steps_per_call", _DEFAULTS.steps_per_call,
                     "Steps per compiled call; also bounds how fast a stop signal is honoured.", lower_bound=1)
flags.DEFINE_enum("strategy", _DEFAULTS.strategy, ["mirrored", "multi_worker"],
                  "mirrored: all local GPUs (or the CPU); multi_worker: the cluster in TF_CONFIG.")
flags.DEFINE_integer("cpu_replicas", _DEFAULTS.cpu_replicas,
                     "Without GPUs: split the CPU into this many MirroredStrategy replicas.", lower_bound=1)
flags.DEFINE_bool("deterministic", _DEFAULTS.deterministic,
                  "Deterministic kernels: bitwise-reproducible runs and resumes on the CPU (slower).")
flags.mark_flag_as_required("workdir")

FLAGS = flags.FLAGS


def config_from_flags():
    names = [field.name for field in dataclasses.fields(TrainConfig)]
    return TrainConfig(**{name: getattr(FLAGS, name) for name in names})


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    config = config_from_flags()
    from cgan import train  # imports TensorFlow; after flag parsing so --help stays fast
    try:
        train.configure_devices(config)
        result = train.train_and_evaluate(config)
    except UserError as e:
        print(f"trainer.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    if not result.stopped_by_signal:
        logging.info("Done at step %d. Samples: python sample.py --workdir=%s --label=0", result.step,
                     config.workdir)


if __name__ == "__main__":
    app.run(main)
