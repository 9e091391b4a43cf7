"""The run configuration: one frozen dataclass built from flags, written as JSON into the workdir.

    config = TrainConfig(workdir="runs/demo", train_steps=3000)
    config.to_json("runs/demo/config.json")
    same = TrainConfig.from_json("runs/demo/config.json")

Functions in `cgan/` take a TrainConfig, never absl FLAGS. Defaults are the seed's setup
(latent 100, batch 16, Adam 2e-4 / β1 0.5, 100k steps) on the embedded synthetic data.
"""

import dataclasses
import json


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    workdir: str
    # Data.
    dataset: str = "isic_skin_cancer/synthetic_64"  # <builder>/<config>; the config fixes the resolution
    data_dir: str = ""                              # where TFDS keeps prepared data; "" = TFDS' default
    manual_dir: str = ""                            # the ISIC class folders, for the real_* and folders_* configs
    # Model and optimisation.
    train_steps: int = 100_000        # total optimisation steps (one D and one G update each)
    batch_size: int = 16              # global batch, split over all replicas
    latent_dim: int = 100
    learning_rate: float = 2e-4       # both networks
    beta_1: float = 0.5
    beta_2: float = 0.999
    precision: str = "auto"           # auto | float32 | mixed_float16 | mixed_bfloat16
    seed: int = 0
    mode_seeking: float = 0.0        # weight of the mode-seeking regulariser on G (0 = off, the seed)
    augment: str = ""                 # DiffAugment policy for D's inputs, e.g. "color,translation,cutout"
    loss: str = "bce"                 # bce (the seed) | hinge
    r1_gamma: float = 0.0             # R1 penalty γ on D's gradient at real images (0 = off)
    ema_decay: float = 0.0            # EMA of G's weights for sampling/evaluation/export (0 = off)
    ema_start: int = 0                # steps before the EMA starts averaging (copies until then)
    balanced: bool = False            # draw every class equally often (default: the data's proportions)
    # Architecture options (defaults: the seed's networks).
    g_conditioning: str = "concat"    # concat (z ⊕ label embedding) | cbn (conditional batch norm)
    g_spectral_norm: bool = False     # spectral normalisation in G
    g_attention: int = 0              # side of G's self-attention block (0 = none)
    d_conditioning: str = "concat"    # concat (label plane) | projection
    d_norm: str = "batch"             # batch | spectral | none
    d_attention: int = 0              # side of D's self-attention block (0 = none)
    # Bookkeeping, in steps.
    checkpoint_every: int = 1000
    summary_every: int = 100
    image_every: int = 1000
    keep_checkpoints: int = 3
    eval_every: int = 0               # steps between quality evaluations (cgan.evaluate); 0 = never
    eval_num_per_class: int = 50      # generated images per class in each evaluation
    inception_weights: str = "imagenet"  # imagenet | none | path of a local InceptionV3 no-top weights file
    steps_per_call: int = 20          # steps run inside one tf.function call (fewer host round trips)
    # Devices.
    strategy: str = "mirrored"        # mirrored (one machine) | multi_worker (TF_CONFIG cluster)
    cpu_replicas: int = 1             # >1 splits the CPU into replicas (to exercise MirroredStrategy)
    deterministic: bool = False       # bitwise-reproducible kernels (slower)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self, path, **extra):
        """Writes the config, plus any resolved values in `extra`, as indented JSON."""
        with open(path, "w") as f:
            json.dump({**self.to_dict(), **extra}, f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def from_json(cls, path):
        """Reads a config written by `to_json`, ignoring the resolved extras."""
        with open(path) as f:
            values = json.load(f)
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# Choices of the option flags: one list for trainer.py's flags and the library that implements them.
LOSSES = ("bce", "hinge")                                       # cgan.losses
GENERATOR_CONDITIONINGS = ("concat", "cbn")                     # cgan.networks
DISCRIMINATOR_CONDITIONINGS = ("concat", "projection")
DISCRIMINATOR_NORMS = ("batch", "spectral", "none")
ARCHITECTURES = ("dcgan", "resnet")                             # the baseline's DCGAN | BigGAN-style residual

# Fields that fix the shape of the model or the meaning of its labels: a workdir's checkpoints only
# resume under the same values.
MODEL_FIELDS = ("dataset", "latent_dim", "g_conditioning", "g_spectral_norm", "g_attention", "d_conditioning",
                "d_norm", "d_attention")
