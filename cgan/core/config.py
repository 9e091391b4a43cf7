"""The run configuration: every training option defined once, with its type, default, help and limits.

    config = TrainConfig(workdir="runs/demo", train_steps=3000)   # UserError on a bad value
    config.to_json("runs/demo/config.json")
    same = TrainConfig.from_json("runs/demo/config.json")

    # trainer.py: the absl flags are generated from the fields, never declared by hand.
    TrainConfig.define_flags(flags.FLAGS)
    run_config = TrainConfig.from_flags(flags.FLAGS)

Each field is declared with `option(default, help, ...)`: the help text, the choices or bounds, and
whether the value fixes the model's shape (`fixes_model`: a workdir's checkpoints only resume under
the same value) or adds state to the checkpoint (`adds_state`: a workdir only resumes with the option
on or off as it was started). `TrainConfig.__post_init__` checks every value once, whichever way the
config was made (flags, JSON, code), and raises a one-line `UserError` naming the flag and the fix.
Functions in `cgan/` take a TrainConfig, never absl FLAGS. Defaults are the baseline's setup (latent
100, batch 16, Adam 2e-4 / β1 0.5, 100k steps) on the embedded synthetic data.
"""

import dataclasses
import json

from cgan.core import files, options
from cgan.core.errors import UserError
from cgan.core.options import option

# Choices shared by the config and the modules that implement them.
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")   # cgan.training.precision
LOSSES = ("bce", "hinge")                                             # cgan.training.losses
ARCHITECTURES = ("dcgan", "resnet")                                   # the baseline's DCGAN | BigGAN-style residual
GENERATOR_CONDITIONINGS = ("concat", "cbn")                           # cgan.model.networks
DISCRIMINATOR_CONDITIONINGS = ("concat", "projection")
DISCRIMINATOR_NORMS = ("batch", "spectral", "none")
AUGMENTATIONS = ("color", "translation", "cutout")                    # cgan.training.augment
STRATEGIES = ("mirrored", "multi_worker")                             # cgan.training.distribute
INPUT_MODES = ("auto", "memory", "stream")                             # cgan.inputs.input_pipeline
MIRRORS = ("none", "flip", "flip_rot90")                              # cgan.inputs.input_pipeline
JIT_COMPILES = ("auto", "true", "false")                              # cgan.training.distribute
FEATURE_SPACES = ("structure", "discriminator")                       # cgan.training.feature_spaces
MAX_PACK = 4                                                          # --pack: PacGAN packs up to this size
DATASET_BUILDER = "isic_skin_cancer"                                  # data/isic_skin_cancer
DATASET_SOURCES = ("real", "synthetic", "folders")
DATASET_RESOLUTIONS = (64, 128, 256)


@dataclasses.dataclass(frozen=True)
class TrainConfig(options.Options):
    # Where.
    workdir: str = options.workdir()
    dataset: str = option(f"{DATASET_BUILDER}/synthetic_64",
                          f"{DATASET_BUILDER}/<config>: synthetic_64|128|256 (embedded, no download), "
                          "real_64|128|256 (the ISIC folders in --manual_dir), folders_64|128|256 (any "
                          "Train/ and Test/ class folders in --manual_dir). The number is the resolution.",
                          fixes_model=True)
    data_dir: str = options.data_dir()
    manual_dir: str = options.manual_dir()
    input: str = option("auto", "Training input: memory (decode the whole train split into memory once), stream (read "
                        "and decode each batch's images from disk; the first use writes an ArrayRecord copy of the "
                        "prepared dataset beside its TFRecord files) or auto (memory unless the decoded split is "
                        "larger than --input_memory_budget). Both give the same batches.", choices=INPUT_MODES)
    input_memory_budget: int = option(2048, "Decoded train split size in MiB (images × height × width × 3 bytes) "
                                      "above which --input=auto streams.", lower=0)
    # Optimisation.
    train_steps: int = option(100_000, "Total steps (one D and one G update each).", lower=1)
    batch_size: int = option(16, "Global batch size in images, split over all replicas (with --dp_epsilon: the "
                             "expected number of real images per step).", lower=1, fixes_privacy=True)
    latent_dim: int = option(100, "Size of the noise vector z.", lower=1, fixes_model=True)
    learning_rate: float = option(2e-4, "Adam learning rate of both networks.", lower=0.0)
    g_learning_rate: float = option(0.0, "Adam learning rate of G alone; 0 = --learning_rate.", lower=0.0)
    d_learning_rate: float = option(0.0, "Adam learning rate of D alone; 0 = --learning_rate.", lower=0.0)
    beta_1: float = option(0.5, "Adam beta_1 of both networks.", lower=0.0, upper=1.0)
    beta_2: float = option(0.999, "Adam beta_2 of both networks.", lower=0.0, upper=1.0)
    precision: str = option("auto", "Numeric precision; auto = the fastest safe choice for the device.",
                            choices=PRECISIONS)
    seed: int = options.run_seed()
    # Losses and regularisers (all off in the baseline).
    loss: str = option("bce", "GAN loss: bce (the baseline: D binary cross-entropy, G non-saturating) or hinge.",
                       choices=LOSSES)
    r1_gamma: float = option(0.0, "R1 penalty on D: γ/2 · E‖∇ₓD(x)‖² at real images (Mescheder et al., 2018); "
                             "0 = off.", lower=0.0)
    mode_seeking: float = option(0.0, "Weight of the mode-seeking regulariser that stops G from ignoring its "
                                 "noise within a class (Mao et al., 2019); 0 = off.", lower=0.0)
    augment: str = option("", "Differentiable augmentation of D's real and generated inputs (DiffAugment): a "
                          "comma-separated subset of color,translation,cutout; empty = none.")
    ema_decay: float = option(0.0, "Keep an exponential moving average of G's weights with this decay (e.g. "
                              "0.999) and use it for grids, evaluation, export and sampling; 0 = off.",
                              lower=0.0, upper=0.99999, adds_state=True)
    ema_start: int = option(0, "Steps during which the EMA only copies G.", lower=0)
    balanced: bool = option(False, "Draw every class equally often (rare classes repeat more); default: the "
                            "data's proportions.")
    mirror: str = option("none", "Symmetries of the real images, for data with no up or left (dermoscopy, "
                         "micrographs): each real image of a batch is shown flipped left-right and/or up-down "
                         "(flip), or in any of the 8 flips and 90° rotations of the square (flip_rot90), "
                         "chosen at random; G learns the symmetric set.", choices=MIRRORS)
    lecam: float = option(0.0, "Weight of the LeCam regulariser on D (Tseng et al., 2021), which keeps D's outputs "
                          "near moving averages of its outputs on the other kind of image; 0 = off.", lower=0.0,
                          adds_state=True)
    lecam_decay: float = option(0.99, "Decay of the LeCam anchors' moving averages.", lower=0.0, upper=0.99999)
    ada_target: float = option(0.0, "Adaptive augmentation (Karras et al., 2020): apply each --augment op with a "
                               "probability p tuned so that E[sign D(real)] stays at this target, e.g. 0.6; "
                               "0 = off (every op always applied).", lower=0.0, upper=1.0, adds_state=True)
    ada_interval: int = option(4, "Steps between updates of the adaptive augmentation probability.", lower=1)
    ada_speed_images: int = option(100_000, "Images over which the adaptive augmentation probability may travel "
                                   "from 0 to 1.", lower=1)
    transition_start: int = option(0, "Transitional conditioning (Shahbazi et al., 2022): the step at which the "
                                   "class signal starts to ramp in; before it G and D ignore the label.", lower=0)
    transition_end: int = option(0, "Transitional conditioning: the step at which the class signal reaches full "
                                 "strength; 0 = off (conditional from the start).", lower=0, adds_state=True)
    # Shape diversity within a class (off in the baseline): cgan.training.coverage, cgan.training.feature_spaces,
    # cgan.model.layout.
    coverage: float = option(0.0, "Weight of the coverage term (IMLE, as in Inclusive GAN): each real image's nearest "
                             "generated candidate of its class, in --coverage_space, is pulled towards it, so that "
                             "no real image is left without a generated image near it; 0 = off.", lower=0.0,
                             adds_state=True)
    coverage_space: str = option("structure", "Where --coverage finds and pulls each real image's nearest candidate: "
                                 "structure (the colour-blind structure map: colour and brightness count for "
                                 "nothing) or discriminator (D's features at 16x16, each channel normalised per "
                                 "image).", choices=FEATURE_SPACES)
    coverage_pool: int = option(10, "With --coverage: generated candidates per real image; each class's pool holds "
                                "this many times the class's training images.", lower=1)
    coverage_every: int = option(500, "With --coverage: steps between refreshes of the pool (inference passes of G "
                                 "over it, then each real image's nearest candidate).", lower=1)
    diversity: float = option(0.0, "Weight of a diversity term: two generated images of one class (same label, "
                              "different z) are pushed apart in --diversity_space until they differ as much as two "
                              "real images of one class in the batch do, and no further; 0 = off.", lower=0.0)
    diversity_space: str = option("discriminator", "Where --diversity measures: structure (the colour-blind structure "
                                  "map) or discriminator (D's features at 16x16, each channel normalised per image).",
                                  choices=FEATURE_SPACES)
    pack: int = option(1, "PacGAN (Lin et al. 2018): D judges this many images of one class at once, stacked "
                       "channel-wise: packs of real images of a class against packs of generated images of one "
                       "label, so it sees how much the images of a class differ. 1 = off (each image alone).",
                       lower=1, upper=MAX_PACK, fixes_model=True)
    unconditional_below: int = option(0, "Coarse layout learned from every class (UTLO, Khorram et al. 2024): G's "
                                      "layers up to this side in pixels take no class, and an unconditional "
                                      "discriminator judges G's image at that side, e.g. 8; 0 = off.", lower=0,
                                      fixes_model=True)
    # Differential privacy (off in the baseline): cgan.training.privacy.
    dp_epsilon: float | None = option(None, "Train D with differential privacy (DP-SGD on its real images, Poisson-"
                                      "sampled) so that the whole run spends at most this ε; G and its images "
                                      "inherit the guarantee. Leave it out for ordinary training.", lower=0.01,
                                      adds_state=True)
    dp_delta: float | None = option(None, "With --dp_epsilon: the δ of the (ε, δ) guarantee; leave it out for "
                                    "1 / (2 × training images). Must be below 1 / training images.", lower=1e-30,
                                    upper=0.5, fixes_privacy=True)
    dp_clip: float = option(1.0, "With --dp_epsilon: the L2 bound of each real image's gradient of D's loss.",
                            lower=1e-6, fixes_privacy=True)
    # Architecture (defaults: the baseline's networks).
    arch: str = option("dcgan", "Networks: dcgan (the baseline's) or resnet (BigGAN-style residual blocks).",
                       choices=ARCHITECTURES, fixes_model=True)
    g_channels: int = option(0, "Base width of the resnet G in channels; 0 = the architecture's default.",
                             lower=0, fixes_model=True)
    d_channels: int = option(0, "Base width of the resnet D in channels; 0 = the architecture's default.",
                             lower=0, fixes_model=True)
    g_conditioning: str = option("concat", "How G takes the label: concat (the baseline: z ⊕ embedding) or cbn "
                                 "(conditional batch norm).", choices=GENERATOR_CONDITIONINGS, fixes_model=True)
    g_spectral_norm: bool = option(False, "Spectral normalisation of G's layers.", fixes_model=True)
    g_attention: int = option(0, "Self-attention in G after the block of this side in pixels, e.g. 32; 0 = none.",
                              lower=0, fixes_model=True)
    d_conditioning: str = option("concat", "How D takes the label: concat (the baseline: a label plane) or "
                                 "projection.", choices=DISCRIMINATOR_CONDITIONINGS, fixes_model=True)
    d_norm: str = option("batch", "D's normalisation: batch (the baseline), spectral (spectral norm, no batch "
                         "norm) or none.", choices=DISCRIMINATOR_NORMS, fixes_model=True)
    d_attention: int = option(0, "Self-attention in D after the block of this side in pixels, e.g. 32; 0 = none.",
                              lower=0, fixes_model=True)
    d_minibatch_std: bool = option(False, "Give D the spread of each image's class within the batch (a "
                                   "conditional minibatch standard deviation), so it can reject a generator whose "
                                   "images of a class look alike.", fixes_model=True)
    # Bookkeeping, in steps.
    checkpoint_every: int = option(1000, "Steps between checkpoints (and model exports).", lower=1)
    summary_every: int = option(100, "Steps between TensorBoard scalars and progress lines.", lower=1)
    image_every: int = option(1000, "Steps between image grids.", lower=1)
    keep_checkpoints: int = option(3, "Checkpoints kept on disk.", lower=1)
    eval_every: int = option(0, "Steps between quality evaluations (cgan.evaluation.evaluate: GAN-test, classifier FD and "
                             "recall per class; CAS only in python -m cgan.evaluate), logged to TensorBoard "
                             "under eval/; 0 = never.", lower=0)
    eval_num_per_class: int = options.num_per_class("Generated images per class in each evaluation.")
    inception_weights: str = options.inception_weights()
    steps_per_call: int = option(20, "Steps per compiled call; also bounds how soon a stop signal is honoured.",
                                 lower=1)
    # Devices.
    strategy: str = option("mirrored", "mirrored: all local GPUs (or the CPU); multi_worker: the cluster in "
                           "TF_CONFIG.", choices=STRATEGIES)
    cpu_replicas: int = option(1, "Without GPUs: split the CPU into this many MirroredStrategy replicas.", lower=1)
    deterministic: bool = option(False, "Deterministic kernels: bitwise-reproducible runs and resumes on the CPU "
                                 "(slower).")
    jit_compile: str = option("auto", "XLA compilation of each replica's training step: true, false, or auto (on where "
                              "a GPU is visible, off on CPUs).", choices=JIT_COMPILES)

    def __post_init__(self):
        super().__post_init__()
        _check_dataset(self.dataset)
        unknown = sorted(set(self.augmentations) - set(AUGMENTATIONS))
        if unknown:
            raise UserError(f"--augment={self.augment}: unknown augmentation {', '.join(unknown)}; use a "
                            f"comma-separated subset of {','.join(AUGMENTATIONS)}")
        if self.ada_target and not self.augmentations:
            raise UserError(f"--ada_target={self.ada_target} adapts the --augment ops, but --augment is empty: "
                            f"pass e.g. --augment=color,translation,cutout, or --ada_target=0")
        if self.transition_end and self.transition_end < self.transition_start:
            raise UserError(f"--transition_end={self.transition_end} comes before --transition_start="
                            f"{self.transition_start}: the class signal must ramp up after it starts")
        for pairing in ("mode_seeking", "diversity"):
            if self.d_minibatch_std and getattr(self, pairing):
                raise UserError(f"--d_minibatch_std and --{pairing} do not go together: --{pairing} pairs the "
                                f"generated labels, so D would tell real from generated batches by their classes' "
                                f"spread; choose one")
        if self.pack > 1:
            for refused, flag in ((self.r1_gamma, "--r1_gamma"), (self.d_minibatch_std, "--d_minibatch_std")):
                if refused:
                    raise UserError(f"--pack={self.pack} and {flag} do not go together: pass --pack=1 or drop {flag}")
            for term in ("coverage", "diversity"):
                if getattr(self, term) and getattr(self, f"{term}_space") == "discriminator":
                    raise UserError(f"--{term}_space=discriminator reads D's features of one image, but with "
                                    f"--pack={self.pack} D reads packs: pass --{term}_space=structure")
            if self.pack % 2 and (self.mode_seeking or self.diversity):
                raise UserError(f"--pack={self.pack} splits the batch into {self.pack} packs of one class, but "
                                f"--mode_seeking and --diversity pair its halves: use an even --pack (2 or 4)")
        layout_sides = feature_sides(self.resolution)[:-1]
        if self.unconditional_below and self.unconditional_below not in layout_sides:
            raise UserError(f"--unconditional_below={self.unconditional_below} is not a side G's class-free layers "
                            f"can end at, at {self.resolution} pixels: use 0 (off) or one of "
                            f"{', '.join(map(str, layout_sides))}")
        if self.arch == "resnet" and self.d_norm == "batch":
            raise UserError("--arch=resnet: its discriminator has no batch norm; pass --d_norm=spectral (or none)")
        for name in ("g_attention", "d_attention"):
            side = getattr(self, name)
            if side and side not in feature_sides(self.resolution):
                raise UserError(f"--{name}={side} is not a feature-map side at {self.resolution} pixels: use 0 (no "
                                f"attention) or one of {', '.join(map(str, feature_sides(self.resolution)))}")
        if self.dp_epsilon is not None:
            self._check_private()
        elif self.dp_delta is not None:
            raise UserError("--dp_delta is the δ of --dp_epsilon's guarantee: pass --dp_epsilon too, or leave "
                            "--dp_delta out")
        if self.arch == "dcgan" and (self.g_channels or self.d_channels):
            raise UserError("--g_channels and --d_channels set the resnet's widths: pass --arch=resnet, or "
                            "leave them at 0")

    def _check_private(self):
        """Options that would let one real image reach D's update other than through its clipped gradient."""
        refused = [
            (self.d_norm == "batch", "--d_norm=batch mixes the real images' statistics in D: pass --d_norm=spectral "
                                     "(or none)"),
            (self.d_minibatch_std, "--d_minibatch_std shows D each class's spread over the batch: drop it"),
            (self.r1_gamma, "--r1_gamma penalises D's gradient at real images outside the clipped update: pass "
                            "--r1_gamma=0"),
            (self.lecam, "--lecam keeps moving averages of D's outputs on real images: pass --lecam=0"),
            (self.ada_target, "--ada_target tunes the augmentation from D's outputs on real images: pass "
                              "--ada_target=0"),
            (self.cpu_replicas > 1 or self.strategy == "multi_worker",
             "it runs on one replica: pass --cpu_replicas=1 and --strategy=mirrored"),
            (self.jit_compile == "true", "XLA cannot compile the per-example gradients: pass --jit_compile=auto "
                                         "(off with --dp_epsilon) or false"),
            (self.coverage, "--coverage pulls G towards real images, outside D's private update: pass --coverage=0"),
            (self.diversity, "--diversity scales G's term by real images' distances, outside D's private update: "
                             "pass --diversity=0"),
            (self.unconditional_below, "--unconditional_below trains a second discriminator on real images without "
                                       "privacy: pass --unconditional_below=0"),
            (self.pack > 1, "--pack judges real images in packs, outside per-example clipping: pass --pack=1"),
        ]
        for refused_option, fix in refused:
            if refused_option:
                raise UserError(f"with --dp_epsilon, {fix}")

    @property
    def pairs_labels(self):
        """True when the generated batch's second half repeats the first half's labels (mode seeking, diversity,
        packing)."""
        return bool(self.mode_seeking or self.diversity or self.pack > 1)

    @property
    def private(self):
        """True when D trains with differential privacy (--dp_epsilon)."""
        return self.dp_epsilon is not None

    @property
    def resolution(self):
        """The side of the dataset's images in pixels (the number ending --dataset)."""
        return int(self.dataset.rsplit("_", 1)[1])

    @property
    def augmentations(self):
        """The --augment policy as a tuple of names, in the order given."""
        return tuple(name.strip() for name in self.augment.split(",") if name.strip())

    def to_json(self, path, **extra):
        """Writes the config, plus any resolved values in `extra`, as indented JSON (atomically)."""
        files.atomic_write_bytes(path, self.json_text(**extra).encode())

    def json_text(self, **extra):
        """The config and the resolved values in `extra` as the text of config.json."""
        return json.dumps({**self.to_dict(), **extra}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, path):
        """Reads a config written by `to_json`, ignoring the resolved extras."""
        with open(path) as f:
            return cls.from_dict(json.load(f))


def dataset_config_names():
    """Every valid `<config>` of --dataset=isic_skin_cancer/<config>."""
    return tuple(f"{source}_{resolution}" for source in DATASET_SOURCES for resolution in DATASET_RESOLUTIONS)


def feature_sides(resolution):
    """Sides of the networks' hidden feature maps, where self-attention may go: 8, 16, ..., resolution / 2."""
    return tuple(8 << i for i in range(resolution.bit_length() - 4))


def _check_dataset(dataset):
    builder_name, _, config_name = dataset.partition("/")
    if builder_name != DATASET_BUILDER or config_name not in dataset_config_names():
        raise UserError(f"unknown --dataset={dataset}: use {DATASET_BUILDER}/<config> with <config> one of "
                        f"{', '.join(dataset_config_names())}")


def model_fields():
    """Names of the fields that fix the model (a workdir resumes only under the same values)."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("fixes_model"))


def privacy_fields():
    """Names of the options a private run's accounting depends on (a private workdir resumes only under them)."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("fixes_privacy"))


def state_fields():
    """Names of the options whose non-zero value adds variables to the checkpoint."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("adds_state"))
