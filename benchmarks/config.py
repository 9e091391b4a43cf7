"""What one benchmark run measures and for how long: one field list, from which the flags are made.

    from benchmarks.config import BenchmarkConfig
    config = BenchmarkConfig(batch_sizes=(16,), steps=20)         # checked on construction

    BenchmarkConfig.define_flags(flags.FLAGS)                     # one flag per field (cgan.core.options)
    config = BenchmarkConfig.from_flags(flags.FLAGS)              # after absl has parsed the command line

The options shared with the trainer (dataset, data_dir, manual_dir, seed, latent_dim, steps_per_call)
take its definitions or defaults. Tuple fields are comma-separated list flags.
"""

import dataclasses

from cgan.core import options
from cgan.core.config import PRECISIONS, TrainConfig
from cgan.core.options import option


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig(options.Options):
    """What to measure and how long; the command-line flags of the same names."""
    dataset: str = option(TrainConfig.dataset, "isic_skin_cancer/<config> whose train split is used.")
    data_dir: str = options.data_dir()
    manual_dir: str = options.manual_dir()
    batch_sizes: tuple[int, ...] = option((16, 64), "Batch sizes in images, e.g. 16,64.", lower=1,
                                           nonempty=True)
    precisions: tuple[str, ...] = option((), "Precisions of the trainer to time; empty = every one this "
                                              "device supports.", choices=PRECISIONS[1:])
    steps: int = option(200, "Timed steps per repeat.", lower=1)
    repeats: int = option(3, "Repeats of each timed figure; the median is reported.", lower=1)
    warmup_steps: int = option(20, "Untimed steps (or batches) before timing, tracing included.",
                                lower=1)
    steps_per_call: int = option(TrainConfig.steps_per_call, "Trainer steps per tf.function call.",
                                  lower=1)
    pipeline_batches: int = option(400, "Batches per timed repeat of the input pipeline.", lower=1)
    matmul_size: int = option(4096, "n of the n×n matmul of the peak.", lower=1)
    matmul_count: int = option(8, "Chained matmuls per timed repeat of the peak.", lower=1)
    intra_op_threads: int = option(0, "TensorFlow's intra-op threads; 0 = its default.", lower=0)
    inter_op_threads: int = option(0, "TensorFlow's inter-op threads; 0 = its default.", lower=0)
    latent_dim: int = option(TrainConfig.latent_dim, "Size of the noise vector z.", lower=1)
    seed: int = options.run_seed()
    json: str = option("benchmark.json", "Where to write every figure as JSON.")
    quick_gpu: bool = option(False, "The quick preset comparison instead of the full benchmark: the trainer's "
                                     "steps/s for each --presets flag file at each --batch_sizes, with XLA on and "
                                     "off, and the projected time of each preset's --train_steps. Sized for one GPU; "
                                     "runs on CPUs too.")
    presets: tuple[str, ...] = option(("p100.flags", "quality.flags"), "Flag files of --quick_gpu: paths, or names "
                                       "of files in the repository root.", nonempty=True)
    dp_epsilon: float | None = option(None, "With --quick_gpu: also time each preset that allows it with this "
                                      "--dp_epsilon (differentially private training), beside the preset as it is.",
                                      lower=0.01)
