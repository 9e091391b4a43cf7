"""Every command's options, one machinery: a frozen dataclass whose fields carry type, default, help and rules.

    @dataclasses.dataclass(frozen=True)
    class SampleOptions(options.Options):
        label: str = options.option("", "Class to generate.", required="pass --label=3 or --label=melanoma")
        num: int = options.option(16, "Number of images.", lower=1, upper=10_000)
        seed: int = options.image_seed()                 # shared options are defined once, below

    SampleOptions.define_flags(flags.FLAGS)              # one absl flag per field, never declared by hand
    opts = SampleOptions.from_flags(flags.FLAGS)         # UserError naming the flag and the fix

Values are checked when the dataclass is made (flags, JSON or code alike), not by absl, so every bad
value gets the same one-line error. Field types: bool, int, float, str, `float | None` (None = off;
the flag is left out) and `tuple[int, ...]` / `tuple[str, ...]` (comma-separated flags; with
`repeated=True` a `tuple[str, ...]` flag is given once per value instead, for values that hold commas:
`--variant='a=--augment=color,cutout' --variant='b='`). A rule that
involves several fields goes in the dataclass's `__post_init__`, after `super().__post_init__()`.
Shared options (the run directory, the image seed, truncation, per-class counts, the evaluation
classifier's flips, Inception weights) are the functions at the bottom: one definition each.
"""

import dataclasses
import types
import typing

from cgan.core.errors import UserError


def option(default, help, choices=None, lower=None, upper=None, required=None, nonempty=False, repeated=False,
           **tags):
    """A field: its default and what the generated flag says and accepts.

    Args:
        default: the value when the flag is not given (its type is the field's type).
        help: the flag's help text, with units; no measured figures (they go stale).
        choices: the allowed values of a str option (or of a tuple's elements).
        lower, upper: inclusive bounds of a number (or of a tuple's elements).
        required: for a str option that must be given, the fix the error names (e.g. "pass --workdir=DIR").
        nonempty: a tuple option needs at least one element.
        repeated: a `tuple[str, ...]` option whose flag is repeated, one value each, not comma-separated.
        **tags: other facts the owner reads back from `field.metadata` (e.g. fixes_model).
    """
    metadata = {"help": help, "choices": choices, "lower": lower, "upper": upper, "required": required,
                "nonempty": nonempty, "repeated": repeated, **tags}
    return dataclasses.field(default=default, metadata=metadata)


class Options:
    """Base of every options dataclass: checks each field on construction; flags and dicts both ways."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            _check_field(field, getattr(self, field.name))

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """An instance from a dict that may hold other keys (resolved values, options of other versions)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def define_flags(cls, flag_values, module_name=None):
        """Defines one absl flag per field in `flag_values` (absl.flags.FLAGS, or a FlagValues in tests).

        `module_name` is the module --help lists them under (the entry point's, so that --helpshort
        shows them); None = this module.
        """
        from absl import flags
        define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
                  str: flags.DEFINE_string, tuple: flags.DEFINE_list}
        for field in dataclasses.fields(cls):
            kind, default = _base_type(field), field.default
            if field.metadata["required"]:
                default = None
            elif kind is tuple:
                default = [str(value) for value in default]
            define_flag = flags.DEFINE_multi_string if field.metadata["repeated"] else define[kind]
            define_flag(field.name, default, _help(field), flag_values=flag_values, module_name=module_name)

    @classmethod
    def from_flags(cls, flag_values):
        """The instance of parsed flags defined by `define_flags`.

        Raises:
            UserError: a value the option does not accept, or a required option left out.
        """
        values = {}
        for field in dataclasses.fields(cls):
            value = flag_values[field.name].value
            if field.metadata["required"] and value is None:
                value = ""
            elif _base_type(field) is tuple:
                value = _parse_list(field, value)
            values[field.name] = value
        return cls(**values)


def _base_type(field):
    """bool, int, float, str or tuple: the kind of flag a field gets (`float | None` -> float)."""
    origin = typing.get_origin(field.type)
    if origin is tuple:
        return tuple
    if origin in (typing.Union, types.UnionType):
        return next(arg for arg in typing.get_args(field.type) if arg is not type(None))
    return field.type


def _element_type(field):
    return typing.get_args(field.type)[0]


def _optional(field):
    return typing.get_origin(field.type) in (typing.Union, types.UnionType)


def _parse_list(field, strings):
    """Flag strings -> the field's tuple; UserError when an element does not parse."""
    kind = _element_type(field)
    try:
        return tuple(kind(text.strip()) for text in strings)
    except ValueError:
        raise UserError(f"--{field.name}={','.join(strings)} is not a list of {_kind(kind, plural=True)}: "
                        f"pass e.g. --{field.name}={','.join(map(str, field.default))}") from None


def _kind(kind, plural=False):
    words = {bool: ("true or false", "booleans"), int: ("an integer", "integers"),
             float: ("a number", "numbers"), str: ("a string", "strings")}
    return words[kind][plural]


def _check_field(field, value):
    """One-line UserError when `value` is not what `field` accepts."""
    meta, name = field.metadata, field.name
    if _optional(field) and value is None:
        return
    kind = _base_type(field)
    if kind is tuple:
        if type(value) is not tuple:
            raise UserError(f"--{name}={value!r} is not a list: pass e.g. --{name}={','.join(map(str, field.default))}")
        if meta["nonempty"] and not value:
            raise UserError(f"--{name} needs at least one value: pass e.g. --{name}={','.join(map(str, field.default))}")
        for item in value:
            _check_value(field, _element_type(field), item)
        return
    _check_value(field, kind, value)
    if meta["required"] and not value:
        raise UserError(f"--{name} is required: {meta['required']}")


def _check_value(field, kind, value):
    meta, name = field.metadata, field.name
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        example = field.default if field.default is not None else meta["lower"]
        raise UserError(f"--{name}={value!r} is not {_kind(kind)}: pass e.g. --{name}={example}")
    if meta["choices"] and value not in meta["choices"]:
        raise UserError(f"--{name}={value} is not a choice: use one of {', '.join(meta['choices'])}")
    lower, upper = meta["lower"], meta["upper"]
    if (lower is not None and not value >= lower) or (upper is not None and not value <= upper):  # NaN fails too
        bounds = (f"from {lower} to {upper}" if lower is not None and upper is not None
                  else f"≥ {lower}" if lower is not None else f"≤ {upper}")
        shown = f"{value:g}" if kind is float else value
        raise UserError(f"--{name}={shown} is out of range: use a value {bounds}")


def _help(field):
    meta, text = field.metadata, field.metadata["help"]
    if meta["choices"]:
        text += f" One of: {', '.join(meta['choices'])}."
    if meta["lower"] is not None or meta["upper"] is not None:
        low = "" if meta["lower"] is None else f"{meta['lower']} ≤ "
        high = "" if meta["upper"] is None else f" ≤ {meta['upper']}"
        text += f" Range: {low}value{high}."
    return text


# Shared options: each defined once, meaning the same in every command that takes it.

TRUNCATION_MIN, TRUNCATION_MAX = 0.05, 10.0
SEED_MAX = 2**31 - 1   # the largest image seed: sample.py, the page and the tools take seeds up to it
NUM_PER_CLASS = 100
FLIPS = ("none", "horizontal", "horizontal_and_vertical")   # the evaluation classifier's, fewest first
INCEPTION_IMAGENET = "imagenet"


def workdir(default="", help="Run directory of trainer.py: checkpoints, TensorBoard events, model files, "
                             "config.json, eval/ reports."):
    """--workdir: required unless the command has a default run (sample.py's runs/demo)."""
    return option(default, help, required=None if default else "pass the run directory, e.g. --workdir=runs/demo")


def run_seed():
    """--seed of a training run: what the weights, the data order, the noise and the augmentations draw from."""
    return option(0, "Random seed of the weights, the data order, the noise and the augmentations.", lower=0)


def image_seed(scheme):
    """--seed of a command that generates images: seed s always gives the same noise vector (the one
    `sample.py --seed=s --num=1` draws); `scheme` says which seeds the command's images take."""
    return option(0, f"First noise seed of the generated images; {scheme}", lower=0, upper=SEED_MAX)


def truncation():
    """--truncation: BigGAN's truncation trick on the noise (cgan.model.sampling)."""
    return option(None, "Truncation threshold t in standard deviations: components of the noise beyond ±t are "
                  "redrawn; smaller = more typical images. Leave it out for plain N(0, 1) noise.",
                  lower=TRUNCATION_MIN, upper=TRUNCATION_MAX)


def num_per_class(help="Generated images per class."):
    """--num_per_class of the tools that measure generated images."""
    return option(NUM_PER_CLASS, help, lower=2)


def classifier_flips():
    """--classifier_flips of the tools that train or load the evaluation classifier."""
    return option("auto", "Random flips in the evaluation classifiers' training: auto chooses on a validation "
                  "split of the real train split; name one to fix it (flips that change a class, as for "
                  "digits, should be none).", choices=("auto",) + FLIPS)


def inception_weights():
    """--inception_weights of the commands that compute FID/KID."""
    return option(INCEPTION_IMAGENET, "Inception-v3 weights for FID/KID: imagenet (the Keras cache, downloaded "
                  "when possible), none (skip them), or the path of a local no-top weights file.")


def data_dir():
    """--data_dir: where TFDS keeps the prepared dataset."""
    return option("", "TFDS data directory for the prepared dataset; empty = ~/tensorflow_datasets.")


def manual_dir():
    """--manual_dir: the source images of the real_* and folders_* datasets."""
    return option("", "Folder with the Train/ and Test/ class folders (real_* and folders_* datasets).")
