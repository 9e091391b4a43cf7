"""cgan.train in process: a few steps on a tiny generated dataset, what they write, and the resume."""

import json
import os

import keras
import tensorflow as tf

from cgan import export, train
from cgan.config import TrainConfig


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
    generator, info = export.load_generator(os.path.join(workdir, export.GENERATOR_FILE))
    assert info["step"] == 4 and generator.output_shape == (None, 64, 64, 3)
    assert not os.path.exists(os.path.join(workdir, ".lock")) or not open(os.path.join(workdir, ".lock")).read()

    keras.backend.clear_session()
    second = train.train_and_evaluate(TrainConfig(**{**config.to_dict(), "train_steps": 6}))
    assert (second.step, second.restored_step) == (6, 4)
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-6")
    third = train.train_and_evaluate(TrainConfig(**{**config.to_dict(), "train_steps": 6}))
    assert (third.step, third.restored_step, third.metrics) == (6, 6, {})


def test_next_boundary_is_the_nearest_write_or_the_end():
    config = TrainConfig(workdir="w", train_steps=95, summary_every=10, image_every=25, checkpoint_every=40,
                         steps_per_call=7)
    assert train._next_boundary(0, config) == 7
    assert train._next_boundary(7, config) == 10
    assert train._next_boundary(24, config) == 25
    assert train._next_boundary(90, config) == 95
