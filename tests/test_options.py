"""cgan.core.options: the kinds of flag an options dataclass generates (TrainConfig's are in test_config.py)."""

import dataclasses

from absl import flags

from cgan.core import options


@dataclasses.dataclass(frozen=True)
class _Listed(options.Options):
    variant: tuple[str, ...] = options.option((), "A variant.", repeated=True)
    sets: tuple[str, ...] = options.option(("a",), "Sets.")


def _parse(argv):
    values = flags.FlagValues()
    _Listed.define_flags(values)
    values(["tool", *argv])
    return values


def test_a_repeated_option_takes_one_value_per_flag_commas_and_all():
    values = _parse(["--variant=a=--augment=color,cutout", "--variant=b=", "--sets=x,y"])
    assert _Listed.from_flags(values) == _Listed(variant=("a=--augment=color,cutout", "b="), sets=("x", "y"))
    assert _Listed.from_flags(_parse([])) == _Listed()
    assert "repeat this option" in values["variant"].help   # absl's own words
