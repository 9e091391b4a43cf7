"""What one benchmark run measures and for how long: one field list, from which the flags are made.

    from benchmarks.config import BenchmarkConfig
    config = BenchmarkConfig(batch_sizes=(16,), steps=20)         # checked on construction

    from absl import flags
    define_flags(flags.FLAGS)                                     # one flag per field, same name and help
    config = config_from_flags(flags.FLAGS)                       # after absl has parsed the command line

Each field carries its help text and, where it has them, a lower bound and the allowed choices
(`dataclasses.field(metadata=...)`); the same check runs on construction and as the flag's
validator. Tuple fields become comma-separated list flags, bool fields `--name` / `--noname`.
"""

import dataclasses
import typing

from cgan.core.config import TrainConfig
from cgan.training.precision import PRECISIONS
from cgan.core.errors import UserError


def _option(default, help, lower=None, choices=None, nonempty=False):
    """A field: its default, its flag's help, the lowest value and the choices of it (or of its
    elements, for a tuple), and whether a tuple needs at least one element."""
    return dataclasses.field(default=default, metadata={"help": help, "lower": lower, "choices": choices,
                                                        "nonempty": nonempty})


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """What to measure and how long; the command-line flags of the same names."""
    dataset: str = _option(TrainConfig.dataset, "isic_skin_cancer/<config> whose train split is used.")
    data_dir: str = _option("", "TFDS data directory; empty = ~/tensorflow_datasets.")
    manual_dir: str = _option("", "Source images, for the real_* and folders_* datasets.")
    batch_sizes: tuple[int, ...] = _option((16, 64), "Batch sizes in images, e.g. 16,64.", lower=1,
                                           nonempty=True)
    precisions: tuple[str, ...] = _option((), "Precisions of the trainer to time; empty = every one this "
                                              "device supports.", choices=PRECISIONS[1:])
    steps: int = _option(200, "Timed steps per repeat.", lower=1)
    repeats: int = _option(3, "Repeats of each timed figure; the median is reported.", lower=1)
    warmup_steps: int = _option(20, "Untimed steps (or batches) before timing, tracing included.",
                                lower=1)
    steps_per_call: int = _option(TrainConfig.steps_per_call, "Trainer steps per tf.function call.",
                                  lower=1)
    pipeline_batches: int = _option(400, "Batches per timed repeat of the input pipeline.", lower=1)
    matmul_size: int = _option(4096, "n of the n×n matmul of the peak.", lower=1)
    matmul_count: int = _option(8, "Chained matmuls per timed repeat of the peak.", lower=1)
    intra_op_threads: int = _option(0, "TensorFlow's intra-op threads; 0 = its default.", lower=0)
    inter_op_threads: int = _option(0, "TensorFlow's inter-op threads; 0 = its default.", lower=0)
    latent_dim: int = _option(TrainConfig.latent_dim, "Size of the noise vector z.", lower=1)
    seed: int = _option(0, "Random seed of weights, data order and noise.", lower=0)
    json: str = _option("benchmark.json", "Where to write every figure as JSON.")
    quick_gpu: bool = _option(False, "The quick preset comparison instead of the full benchmark: the trainer's "
                                     "steps/s for each --presets flag file at each --batch_sizes, with XLA on and "
                                     "off, and the projected time of each preset's --train_steps. Sized for a few "
                                     "minutes on one GPU; runs on CPUs too.")
    presets: tuple[str, ...] = _option(("p100.flags", "quality.flags"), "Flag files of --quick_gpu: paths, or names "
                                       "of files in the repository root.", nonempty=True)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            problem = field_problem(field, getattr(self, field.name))
            if problem:
                raise UserError(problem)

    def to_dict(self):
        return dataclasses.asdict(self)


def _element_type(field):
    """int or str: the type of a field, or of its elements for a tuple field."""
    return typing.get_args(field.type)[0] if typing.get_origin(field.type) is tuple else field.type


def field_problem(field, value):
    """The one-line message of what is wrong with `value` for `field`, or None when it is valid."""
    values = value if typing.get_origin(field.type) is tuple else (value,)
    kind = _element_type(field)
    lower, choices = field.metadata["lower"], field.metadata["choices"]
    if field.metadata["nonempty"] and not values:
        return f"--{field.name} needs at least one value"
    for item in values:
        if not isinstance(item, kind) or (isinstance(item, bool) and kind is not bool):
            return f"--{field.name} takes {kind.__name__} values, got {item!r}"
        if lower is not None and item < lower:
            return f"--{field.name} must be at least {lower}, got {item}"
        if choices is not None and item not in choices:
            return f"--{field.name} takes values from {', '.join(choices)}, got {item!r}"
    return None


def _parse_list(field, strings):
    """Flag strings -> the field's tuple; raises ValueError when an element does not parse."""
    kind = _element_type(field)
    return tuple(kind(s.strip()) for s in strings)


def define_flags(flag_values, module_name=None):
    """Defines one absl flag per BenchmarkConfig field (defined only by the benchmark's own command line,
    since trainer.py shares some names).

    Args:
        flag_values: the absl FlagValues to define them in (flags.FLAGS for the program).
        module_name: the module --help lists them under: the entry point's (sys.argv[0]), so that
            --help shows them; None lists them under this module (--helpfull only).
    """
    from absl import flags
    defaults = BenchmarkConfig()
    for field in dataclasses.fields(BenchmarkConfig):
        name, default, help = field.name, getattr(defaults, field.name), field.metadata["help"]
        lower = field.metadata["lower"]
        if field.type is str:
            flags.DEFINE_string(name, default, help, flag_values=flag_values, module_name=module_name)
        elif field.type is bool:
            flags.DEFINE_bool(name, default, help, flag_values=flag_values, module_name=module_name)
        elif field.type is int:
            flags.DEFINE_integer(name, default, help, lower_bound=lower, flag_values=flag_values,
                                 module_name=module_name)
        else:
            flags.DEFINE_list(name, [str(v) for v in default], help, flag_values=flag_values,
                              module_name=module_name)

            def check(strings, field=field):
                try:
                    problem = field_problem(field, _parse_list(field, strings))
                except ValueError:
                    problem = f"--{field.name} takes {_element_type(field).__name__} values, got {strings}"
                if problem:
                    raise flags.ValidationError(problem)
                return True

            flags.register_validator(name, check, flag_values=flag_values)


def config_from_flags(flag_values):
    """The BenchmarkConfig of parsed flags defined by define_flags."""
    values = {}
    for field in dataclasses.fields(BenchmarkConfig):
        value = flag_values[field.name].value
        values[field.name] = _parse_list(field, value) if typing.get_origin(field.type) is tuple else value
    return BenchmarkConfig(**values)
