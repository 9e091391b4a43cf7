"""Reproducibility: every draw depends on its seed alone, not on what ran before (cgan.core.seeding).

The same command gives the same run whether or not it prepared the dataset; the same evaluation,
downstream and memorisation reports come from a fresh and from a warm cache; two builds of a dataset
write the same bytes; a sample is the same image in any process.
"""

import dataclasses
import os
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan.core import images, seeding

from cgan.evaluation import downstream, evaluate, memorisation, tool

from cgan.model import model_files, sampling

from cgan.training import step
from cgan.core.config import TrainConfig
from cgan.evaluation.metrics import classifier
from conftest import checkpoint_tensors, make_imbalanced_run, run_python, tree

QUICK = classifier.ClassifierSettings(epochs=1, batch_size=8, flips="horizontal")
# What differs between a report made with a fresh cache and one made with a warm cache, by design.
_RUN_DEPENDENT = {"cached", "train_seconds", "seconds", "generator", "picture", "report_card"}


def move_global_random_state(seed):
    """Moves every global random stream, as a dataset build, an import or other work may."""
    keras.utils.set_random_seed(seed)
    random.random()
    np.random.rand(3)
    tf.random.uniform([3])
    keras.random.normal([3])


def _without_run_dependent(value):
    if isinstance(value, dict):
        return {k: _without_run_dependent(v) for k, v in value.items() if k not in _RUN_DEPENDENT}
    if isinstance(value, list):
        return [_without_run_dependent(v) for v in value]
    return value


def test_set_global_seed_makes_an_unseeded_draw_depend_on_the_seed_alone():
    draws = []
    for moved in (1, 2):
        move_global_random_state(moved)
        seeding.set_global_seed(7)
        draws.append((random.random(), float(np.random.rand()), float(tf.random.uniform([])),
                      float(keras.random.normal([]))))
    assert draws[0] == draws[1]
    seeding.set_global_seed(8)
    assert random.random() != draws[0][0]


@pytest.mark.parametrize("options", [{}, dict(arch="resnet", g_channels=4, d_channels=4, g_conditioning="cbn",
                                              d_conditioning="projection", d_norm="spectral", ema_decay=0.9)],
                         ids=["baseline", "resnet-options"])
def test_initial_weights_depend_on_the_seed_alone(options):
    config = TrainConfig(workdir="unused", precision="float32", **options)

    def initial_weights(moved):
        move_global_random_state(moved)
        keras.backend.clear_session()
        train_step = step.TrainStep(config, tf.distribute.get_strategy(), "float32", ("a", "b", "c"), 64)
        return [v.numpy() for v in train_step.generator.weights + train_step.discriminator.weights]

    first, second = initial_weights(1), initial_weights(2)
    assert len(first) == len(second) > 10
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other_seed = step.TrainStep(TrainConfig(workdir="unused", precision="float32", seed=1, **options),
                                tf.distribute.get_strategy(), "float32", ("a", "b", "c"), 64)
    assert not np.array_equal(first[0], other_seed.generator.weights[0].numpy())


def test_the_evaluation_classifier_depends_on_its_seed_alone():
    rng = np.random.default_rng(0)
    pictures, labels = rng.integers(0, 256, (40, 16, 16, 3)).astype(np.uint8), np.repeat(np.arange(4), 10)

    two_epochs = classifier.ClassifierSettings(epochs=2, batch_size=8, flips="horizontal")

    def trained(moved, settings=two_epochs):
        move_global_random_state(moved)   # e.g. the trainer's --seed, under which it may train the cache
        return [v.numpy() for v in classifier.train_classifier(pictures, labels, 4, settings).weights]

    first, second = trained(1), trained(2)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = trained(1, dataclasses.replace(two_epochs, seed=1))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.fixture
def fresh_run(tmp_path):
    """A run on a tiny class-folder dataset whose data_dir holds no cached classifier yet."""
    return make_imbalanced_run(tmp_path)


def test_evaluate_reports_the_same_from_a_fresh_and_a_warm_cache(fresh_run, tmp_path):
    workdir = fresh_run[0]
    reports = []
    for moved in (1, 2):
        move_global_random_state(moved)
        report, _ = tool.measure_workdir(evaluate, workdir, evaluate.Settings(num_per_class=4, inception_weights="none"),
                                         str(tmp_path / f"report{moved}.json"), classifier_settings=QUICK)
        reports.append(report)
    assert not reports[0]["classifier"]["cached"] and reports[1]["classifier"]["cached"]
    assert _without_run_dependent(reports[0]) == _without_run_dependent(reports[1])
    cards = [open(report["report_card"], "rb").read() for report in reports]
    assert cards[0] == cards[1]


def test_memorisation_reports_the_same_from_a_fresh_and_a_warm_cache(fresh_run, tmp_path):
    workdir = fresh_run[0]
    reports = []
    for moved in (1, 2):
        move_global_random_state(moved)
        report, _ = tool.measure_workdir(memorisation, workdir, memorisation.Settings(num_per_class=4),
                                         str(tmp_path / f"m{moved}.json"), classifier_settings=QUICK)
        # The first call trains and caches the classifier; the second loads it.
        assert os.path.isfile(os.path.join(report["classifier"]["cache_dir"], classifier.INFO_FILE))
        reports.append(report)
    assert _without_run_dependent(reports[0]) == _without_run_dependent(reports[1])


def test_downstream_reports_the_same_on_every_call(fresh_run, tmp_path):
    workdir = fresh_run[0]
    settings = downstream.Settings(seeds=1, epochs=1, batch_size=8, classifier_flips="horizontal")
    reports = []
    for moved in (1, 2):
        move_global_random_state(moved)
        reports.append(tool.measure_workdir(downstream, workdir, settings, str(tmp_path / f"d{moved}.json"))[0])
    assert _without_run_dependent(reports[0]) == _without_run_dependent(reports[1])


@pytest.mark.slow
def test_a_sample_is_the_same_image_in_a_fresh_process_and_after_other_draws(fresh_run, tmp_path):
    workdir = fresh_run[0]
    result = run_python("sample.py", f"--workdir={workdir}", "--label=1", "--seed=5", "--num=2",
                        f"--out_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-3000:]
    generator, info = model_files.load_generator(os.path.join(workdir, model_files.GENERATOR_FILE))
    move_global_random_state(3)
    sampling.generate(generator, 0, [0, 1, 2], info["latent_dim"])          # other calls first
    pictures = sampling.generate(generator, 1, [6, 5], info["latent_dim"])   # [2, R, R, 3]
    names, _ = sampling.file_names(1, info["class_names"][1], [6, 5], None)
    for picture, name in zip(pictures, names):
        written = tf.io.decode_png((tmp_path / "out" / name).read_bytes()).numpy()
        np.testing.assert_array_equal(written, picture)


def _trainer(workdir, data_dir, *flags):
    result = run_python("trainer.py", "--flagfile=quality.flags", f"--workdir={workdir}", f"--data_dir={data_dir}",
                        "--deterministic", "--train_steps=2", "--batch_size=8", "--steps_per_call=1",
                        "--checkpoint_every=2", "--summary_every=1", "--image_every=1000", *flags)
    assert result.returncode == 0, result.stderr[-3000:]


def _assert_same_checkpoints(first, second):
    a, b = checkpoint_tensors(first), checkpoint_tensors(second)
    assert a.keys() == b.keys() and len(a) > 50
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _dataset_files(data_dir, config):
    """{relative path: bytes} of a prepared dataset's files (the records and their metadata)."""
    found = tree(os.path.join(data_dir, "isic_skin_cancer", config))
    assert any(".tfrecord-" in path for path in found), sorted(found)
    return found


def _class_folders(root):
    """A small class-folder dataset: three classes of coloured noise, Train/ and Test/."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("alpha", "beta", "gamma")):
        for split, count in (("Train", 6), ("Test", 2)):
            for i in range(count):
                picture = np.clip(np.array([90 * label, 200 - 70 * label, 120]) + rng.integers(-40, 40, (40, 48, 3)),
                                  0, 255).astype(np.uint8)
                images.write_png(str(root / split / name / f"{name}_{i}.png"), picture)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["synthetic_64", "folders_64"], ids=["embedded", "class-folders"])
def test_a_run_that_prepares_the_data_equals_the_next_one(tmp_path, dataset):
    manual = [f"--manual_dir={_class_folders(tmp_path / 'folders')}"] if dataset.startswith("folders") else []
    data_dir = tmp_path / "tfds"
    _trainer(tmp_path / "first", data_dir, f"--dataset=isic_skin_cancer/{dataset}", *manual)   # prepares the data
    _trainer(tmp_path / "second", data_dir, f"--dataset=isic_skin_cancer/{dataset}", *manual)  # finds it prepared
    _assert_same_checkpoints(str(tmp_path / "first"), str(tmp_path / "second"))
    if dataset.startswith("folders"):  # and a build in another process writes the same bytes
        other_data_dir = tmp_path / "tfds_again"
        built = run_python("-m", "data.isic_skin_cancer", f"--config={dataset}", f"--data_dir={other_data_dir}",
                           *manual)
        assert built.returncode == 0, built.stderr[-3000:]
        assert _dataset_files(data_dir, dataset) == _dataset_files(other_data_dir, dataset)
