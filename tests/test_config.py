"""cgan.core.config: one definition per option, the flags generated from it, and the checks made once."""

import dataclasses
import json

import pytest
from absl import flags

from cgan.core import config as config_lib
from cgan.core.config import TrainConfig
from cgan.core.errors import UserError


def _flag_values(argv):
    values = flags.FlagValues()
    config_lib.TrainConfig.define_flags(values)
    values(["trainer.py", *argv])
    return values


def test_every_field_has_exactly_one_flag_with_its_default_and_help():
    values = _flag_values([])
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    defined = set(values)
    assert defined == set(fields)
    for name, field in fields.items():
        assert values[name].help.startswith(field.metadata["help"])
        if name != "workdir":
            assert values[name].default == field.default
    assert "One of: bce, hinge" in values["loss"].help and "Range: 1 ≤ value" in values["batch_size"].help


def test_flags_make_the_config_later_flags_win(tmp_path):
    flagfile = tmp_path / "preset.flags"
    flagfile.write_text("--workdir=runs/x\n--batch_size=32\n--loss=hinge\n--balanced\n")
    values = _flag_values([f"--flagfile={flagfile}", "--batch_size=8"])
    config = config_lib.TrainConfig.from_flags(values)
    assert (config.workdir, config.batch_size, config.loss, config.balanced) == ("runs/x", 8, "hinge", True)


def test_nested_flagfile_overrides_only_what_differs(tmp_path):
    (tmp_path / "base.flags").write_text("--workdir=runs/base\n--batch_size=32\n--mode_seeking=0.25\n")
    (tmp_path / "child.flags").write_text(f"--flagfile={tmp_path / 'base.flags'}\n--workdir=runs/child\n")
    config = config_lib.TrainConfig.from_flags(_flag_values([f"--flagfile={tmp_path / 'child.flags'}"]))
    assert (config.workdir, config.batch_size, config.mode_seeking) == ("runs/child", 32, 0.25)


@pytest.mark.parametrize("changes,message", [
    (dict(batch_size=0), "--batch_size=0 is out of range: use a value ≥ 1"),
    (dict(train_steps=-5), "--train_steps=-5 is out of range"),
    (dict(precision="half"), "--precision=half is not a choice: use one of auto, float32"),
    (dict(loss="wasserstein"), "--loss=wasserstein is not a choice"),
    (dict(d_norm="layer"), "--d_norm=layer is not a choice"),
    (dict(ema_decay=1.5), "--ema_decay=1.5 is out of range: use a value from 0.0 to 0.99999"),
    (dict(beta_1=-0.1), "--beta_1=-0.1 is out of range"),
    (dict(augment="color,flip"), "unknown augmentation flip"),
    (dict(dataset="cifar10"), "unknown --dataset=cifar10"),
    (dict(dataset="isic_skin_cancer/real_32"), "unknown --dataset=isic_skin_cancer/real_32"),
    (dict(workdir=""), "--workdir is required"),
    (dict(batch_size="16"), "--batch_size='16' is not an integer"),
    (dict(ada_target=0.6), "--augment is empty"),
    (dict(transition_start=500, transition_end=100), "--transition_end=100 comes before --transition_start=500"),
    (dict(g_channels=32), "pass --arch=resnet"),
    (dict(arch="resnet"), "pass --d_norm=spectral"),
    (dict(d_minibatch_std=True, mode_seeking=0.25), "--d_minibatch_std and --mode_seeking do not go together"),
    (dict(arch="stylegan"), "--arch=stylegan is not a choice: use one of dcgan, resnet"),
    (dict(d_minibatch_std=True, diversity=1.0), "--d_minibatch_std and --diversity do not go together"),
    (dict(unconditional_below=32), "--unconditional_below=32 is not a side G's class-free layers can end at, at 64 "
                                   "pixels: use 0 (off) or one of 8, 16"),
    (dict(coverage_space="pixels"), "--coverage_space=pixels is not a choice: use one of structure, discriminator"),
    (dict(dp_epsilon=10, d_norm="spectral", coverage=1.0), "with --dp_epsilon, --coverage pulls G towards real"),
    (dict(dp_epsilon=10, d_norm="spectral", diversity=1.0), "with --dp_epsilon, --diversity scales G's term"),
    (dict(dp_epsilon=10, d_norm="spectral", unconditional_below=8), "with --dp_epsilon, --unconditional_below"),
    (dict(pack=5), "--pack=5 is out of range"),
    (dict(pack=3, mode_seeking=1.0), "--mode_seeking and --diversity pair its halves: use an even --pack (2 or 4)"),
    (dict(pack=2, r1_gamma=1.0), "--pack=2 and --r1_gamma do not go together: pass --pack=1 or drop --r1_gamma"),
    (dict(pack=2, d_minibatch_std=True), "--pack=2 and --d_minibatch_std do not go together"),
    (dict(pack=2, diversity=1.0), "--diversity_space=discriminator reads D's features of one image, but with "
                                  "--pack=2 D reads packs: pass --diversity_space=structure"),
    (dict(pack=2, coverage=1.0, coverage_space="discriminator"), "pass --coverage_space=structure"),
    (dict(dp_epsilon=10, d_norm="spectral", pack=2), "with --dp_epsilon, --pack judges real images in packs"),
])
def test_bad_values_are_one_line_user_errors(changes, message):
    values = {"workdir": "runs/x", **changes}
    with pytest.raises(UserError) as error:
        TrainConfig(**values)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_ints_are_accepted_for_float_options():
    assert TrainConfig(workdir="w", learning_rate=1).learning_rate == 1


def test_json_round_trip_ignores_resolved_values_and_unknown_keys(tmp_path):
    config = TrainConfig(workdir=str(tmp_path), batch_size=32, augment="translation,cutout")
    path = tmp_path / "config.json"
    config.to_json(str(path), resolution=64, class_names=["a"])
    stored = json.loads(path.read_text())
    assert stored["resolution"] == 64 and stored["batch_size"] == 32
    stored["an_option_of_another_version"] = 1
    path.write_text(json.dumps(stored))
    assert TrainConfig.from_json(str(path)) == config
    assert config.augmentations == ("translation", "cutout")


def test_model_and_state_fields_come_from_the_field_definitions():
    assert {"dataset", "latent_dim", "g_conditioning", "d_norm", "d_attention"} <= set(config_lib.model_fields())
    assert "batch_size" not in config_lib.model_fields()
    assert {"ema_decay", "lecam", "ada_target", "transition_end"} <= set(config_lib.state_fields())
    assert {"arch", "g_channels", "d_channels", "unconditional_below"} <= set(config_lib.model_fields())
    assert "coverage" in config_lib.state_fields() and "coverage_every" not in config_lib.state_fields()
