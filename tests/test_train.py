"""cgan.train in process: a few steps on a tiny generated dataset, what they write, and the resume."""

import json
import os

import keras
import tensorflow as tf

from cgan import train

from cgan.model import model_files
from cgan.core.config import TrainConfig


def test_a_few_steps_write_everything_and_resume_where_they_stopped(tmp_path, isic_data_dir):
    config = TrainConfig(workdir=str(tmp_path / "run"), dataset="isic_skin_cancer/real_64",
                         data_dir=str(isic_data_dir), batch_size=4, precision="float32", train_steps=4,
                         checkpoint_every=2, summary_every=2, image_every=2, steps_per_call=2)
    first = train.train_and_evaluate(config)
    assert (first.step, first.restored_step, first.stopped_by_signal) == (4, 0, False)
    assert set(first.metrics) == {"d_loss", "g_loss", "d_real", "d_fake"}
    workdir = config.workdir
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == ["step_000002.png", "step_000004.png"]
    stored = json.load(open(os.path.join(workdir, "config.json")))
    assert stored["batch_size"] == 4 and stored["resolution"] == 64 and len(stored["class_names"]) == 9
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-4")
    generator, info = model_files.load_generator(os.path.join(workdir, model_files.GENERATOR_FILE))
    assert info["step"] == 4 and generator.output_shape == (None, 64, 64, 3)
    assert not os.path.exists(os.path.join(workdir, ".lock")) or not open(os.path.join(workdir, ".lock")).read()

    assert _hparams_sessions(workdir) == [{**{k: v for k, v in config.to_dict().items()
                                              if k not in ("workdir", "data_dir", "manual_dir") and v is not None},
                                           "resolved_precision": "float32", "num_replicas": 1, "num_workers": 1,
                                           "resolution": 64, "num_train_images": 18, "resolved_input": "memory",
                                           "resolved_jit_compile": False}]

    keras.backend.clear_session()
    second = train.train_and_evaluate(TrainConfig(**{**config.to_dict(), "train_steps": 6}))
    assert (second.step, second.restored_step) == (6, 4)
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-6")
    third = train.train_and_evaluate(TrainConfig(**{**config.to_dict(), "train_steps": 6}))
    assert (third.step, third.restored_step, third.metrics) == (6, 6, {})
    assert len(_hparams_sessions(workdir)) == 1                  # a resume writes no second session


def _hparams_sessions(workdir):
    """The HParams sessions (hparams as a dict) in the event files of the workdir itself."""
    from tensorboard.plugins.hparams import plugin_data_pb2
    sessions = []
    for name in sorted(n for n in os.listdir(workdir) if n.startswith("events.out")):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(workdir, name)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        hparams = data.session_start_info.hparams
                        sessions.append({k: _hparam_value(v) for k, v in hparams.items()})
    return sessions


def _hparam_value(value):
    kind = value.WhichOneof("kind")
    number = getattr(value, kind)
    return int(number) if kind == "number_value" and float(number).is_integer() else number


def test_next_boundary_is_the_nearest_write_or_the_end():
    config = TrainConfig(workdir="w", train_steps=95, summary_every=10, image_every=25, checkpoint_every=40,
                         steps_per_call=7)
    assert train._next_boundary(0, config) == 7
    assert train._next_boundary(7, config) == 10
    assert train._next_boundary(24, config) == 25
    assert train._next_boundary(90, config) == 95
