"""cgan.evaluate and the feature extractors, on the tiny ISIC-layout fixture (18 train, 9 test images)."""

import json
import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan import datasets, evaluate, export, input_pipeline
from cgan.config import TrainConfig
from cgan.errors import UserError
from cgan.metrics import classifier, inception

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LATENT_DIM = 8
QUICK = classifier.ClassifierSettings(epochs=3, batch_size=8)


def tiny_generator(num_classes=9, resolution=64):
    """A conditional generator small enough to build in milliseconds: [z, label] -> tanh images."""
    z = keras.Input((LATENT_DIM,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    embedded = keras.layers.Embedding(num_classes, 4,
                                      embeddings_initializer=keras.initializers.RandomNormal(seed=1))(label)
    x = keras.layers.Concatenate()([z, embedded])
    x = keras.layers.Dense(4 * 4 * 3, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(2))(x)
    x = keras.layers.Reshape((4, 4, 3))(x)
    return keras.Model([z, label], keras.layers.UpSampling2D(resolution // 4)(x), name="generator")


@pytest.fixture(scope="module")
def builder(isic_data_dir):
    return datasets.prepare("isic_skin_cancer/real_64", str(isic_data_dir))


@pytest.fixture(scope="module")
def class_names(builder):
    return datasets.class_names(builder)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("eval_cache"))


@pytest.fixture(scope="module")
def evaluator(builder, class_names, cache_dir):
    return evaluate.Evaluator(builder, class_names, 64, num_per_class=4, seed=0, inception_weights="none",
                              classifier_settings=QUICK, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def inception_weights_file(tmp_path_factory):
    """Random InceptionV3 weights saved as a local file: the path a user without internet passes."""
    path = str(tmp_path_factory.mktemp("inception") / "inception_v3_notop.weights.h5")
    inception.build(None).save_weights(path)
    return path


def splits(builder):
    return input_pipeline.load_split(builder, "train"), input_pipeline.load_split(builder, "test")


def test_generation_plan_follows_the_train_class_mix():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    generate, overall = evaluate.generation_plan(labels, 3, num_per_class=10)
    np.testing.assert_array_equal(overall, [18, 9, 3])
    np.testing.assert_array_equal(generate, [18, 10, 10])


def test_classifier_is_cached_and_reused(builder, class_names, tmp_path, monkeypatch):
    train, test = splits(builder)
    first = classifier.load_or_train(builder, class_names, train, test, QUICK, str(tmp_path))
    model_path = tmp_path / classifier.MODEL_FILE
    assert not first.cached and model_path.exists() and (tmp_path / classifier.INFO_FILE).exists()
    mtime = model_path.stat().st_mtime_ns

    def must_not_train(*args, **kwargs):
        raise AssertionError("retrained although the cache matches")

    monkeypatch.setattr(classifier, "train_classifier", must_not_train)
    second = classifier.load_or_train(builder, class_names, train, test, QUICK, str(tmp_path))
    assert second.cached and model_path.stat().st_mtime_ns == mtime
    assert second.info["test_accuracy"] == first.info["test_accuracy"]
    np.testing.assert_allclose(second.features(test[0]), first.features(test[0]), rtol=1e-5, atol=1e-6)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporaries left

    monkeypatch.undo()
    other = classifier.load_or_train(builder, class_names, train, test,
                                     classifier.ClassifierSettings(epochs=1, batch_size=8), str(tmp_path))
    assert not other.cached and json.load(open(tmp_path / classifier.INFO_FILE))["settings"]["epochs"] == 1


def test_cas_on_real_test_images_equals_the_classifier_test_accuracy(evaluator, builder):
    test_images, test_labels = input_pipeline.load_split(builder, "test")
    assert evaluator.classifier.accuracy(test_images, test_labels) == evaluator.classifier.info["test_accuracy"]


def test_offline_metrics_overall_and_per_class_with_fixed_seeds(evaluator, class_names):
    generator = tiny_generator()
    values = evaluator.evaluate(generator, LATENT_DIM)
    for name in ("classifier_test_accuracy", "cas", "classifier_fd", "classifier_kid", "classifier_kid_std",
                 "classifier_precision", "classifier_recall"):
        assert np.isfinite(values[name]), name
    for class_name in class_names:
        assert 0.0 <= values[f"cas/{class_name}"] <= 1.0
        assert f"classifier_fd/{class_name}" in values and f"classifier_kid/{class_name}" in values
        assert f"classifier_precision/{class_name}" not in values  # 2 real images: too few for k = 3
    assert values["cas"] == pytest.approx(np.mean([values[f"cas/{c}"] for c in class_names]))
    assert not any(name.startswith(("fid", "kid")) for name in values)
    assert evaluator.evaluate(generator, LATENT_DIM) == values  # same seeds, same numbers


def test_inception_metrics_with_a_local_weights_file(builder, class_names, cache_dir, inception_weights_file):
    evaluator = evaluate.Evaluator(builder, class_names, 64, num_per_class=2,
                                   inception_weights=inception_weights_file, classifier_settings=QUICK,
                                   cache_dir=cache_dir)
    values = evaluator.evaluate(tiny_generator(), LATENT_DIM)
    for name in ("fid", "kid", "kid_std", "inception_precision", "inception_recall", "fid/melanoma", "kid/nevus",
                 "cas", "classifier_fd"):
        assert np.isfinite(values[name]), name
    described = evaluator.description()["inception"]
    assert described["weights"] == inception_weights_file and "299x299" in described["resize"]
    cached = os.listdir(os.path.join(cache_dir, evaluate.INCEPTION_CACHE_DIR))
    assert cached == [f"train_{evaluator.inception.digest()[:16]}.npy"]


def test_unreachable_imagenet_weights_warn_in_one_line_and_keep_offline_metrics(
        builder, class_names, cache_dir, monkeypatch, caplog):
    def offline(weights=None):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x_notop.h5: None -- [Errno -2] "
                        "Name or service not known")

    monkeypatch.setattr(inception, "build", offline)
    with caplog.at_level(logging.WARNING):
        evaluator = evaluate.Evaluator(builder, class_names, 64, num_per_class=4, inception_weights="imagenet",
                                       classifier_settings=QUICK, cache_dir=cache_dir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "Inception metrics (FID, KID) skipped" in warnings[0] and "--inception_weights=PATH" in warnings[0]
    assert "cannot get the ImageNet" in evaluator.description()["inception"]["skipped"]
    values = evaluator.evaluate(tiny_generator(), LATENT_DIM)
    assert "cas" in values and "classifier_fd" in values and "fid" not in values


def test_missing_inception_weights_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        inception.load(str(tmp_path / "missing.h5"))


def make_run(workdir, isic_data_dir, isic_folders, class_names, step=7):
    """A run directory as trainer.py leaves it: exported generator with metadata, and config.json."""
    generator = tiny_generator()
    info = {"class_names": list(class_names), "latent_dim": LATENT_DIM, "resolution": 64, "step": step}
    export.save_models(str(workdir), generator, generator, info)
    TrainConfig(workdir=str(workdir), dataset="isic_skin_cancer/real_64", data_dir=str(isic_data_dir),
                manual_dir=str(isic_folders)).to_json(str(workdir / "config.json"))


def read_scalars(event_dir):
    values = {}
    for name in [n for n in os.listdir(event_dir) if n.startswith("events.out")]:
        for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
            for value in event.summary.value:
                values[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    return values


def test_evaluate_a_run_writes_a_comparable_report_and_scalars(tmp_path, isic_data_dir, isic_folders, class_names):
    workdir = tmp_path / "run"
    make_run(workdir, isic_data_dir, isic_folders, class_names)
    report, path = evaluate.evaluate(str(workdir), num_per_class=3, seed=5, inception_weights="none")
    assert path == str(workdir / "eval" / "report_step_000007.json")
    saved = json.load(open(path))
    assert saved["step"] == 7 and saved["dataset"] == "isic_skin_cancer/real_64/1.0.0"
    assert saved["generated"]["num_per_class"] == 3 and saved["generated"]["seed"] == 5
    assert saved["inception"] == {"skipped": "disabled (--inception_weights=none)"}
    assert saved["classifier"]["settings"]["epochs"] == classifier.ClassifierSettings().epochs
    assert saved["metrics"]["cas"] == report["metrics"]["cas"]
    scalars = read_scalars(str(workdir / "eval"))
    assert scalars["eval/cas"] == (7, pytest.approx(report["metrics"]["cas"]))
    assert {"eval/cas/melanoma", "eval/classifier_fd", "eval/classifier_kid/nevus"} <= set(scalars)


def test_evaluate_explains_bad_input(tmp_path, builder, class_names):
    with pytest.raises(UserError, match="is not a directory"):
        evaluate.evaluate(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="no generator.keras"):
        evaluate.evaluate(str(tmp_path))
    with pytest.raises(UserError, match="num_per_class=1"):
        evaluate.Evaluator(builder, class_names, 64, num_per_class=1)
    with pytest.raises(UserError, match="not those of"):
        evaluate.Evaluator(builder, class_names[:3], 64)
    with pytest.raises(UserError, match="128x128"):
        evaluate.Evaluator(builder, class_names, 128, inception_weights="none", classifier_settings=QUICK)


def run_evaluate(*flags):
    return subprocess.run([sys.executable, "-m", "cgan.evaluate", *flags], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)


def error_lines(result):
    """Our error lines (TensorFlow's C++ start-up lines may precede them on stderr)."""
    return [line for line in result.stderr.splitlines() if line.startswith("evaluate: error:")]


def test_cli_reports_bad_flags_in_one_line(tmp_path):
    result = run_evaluate(f"--workdir={tmp_path}", "--num_per_class=0")
    assert result.returncode == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "num_per_class" in lines[0] and result.stderr.strip().endswith(lines[0])


@pytest.mark.slow
def test_cli_evaluates_a_run_made_by_the_trainer(tmp_path, isic_folders):
    workdir, data_dir = tmp_path / "run", tmp_path / "tfds"
    trained = subprocess.run(
        [sys.executable, "trainer.py", f"--workdir={workdir}", "--dataset=isic_skin_cancer/real_64",
         f"--data_dir={data_dir}", f"--manual_dir={isic_folders}", "--train_steps=2", "--batch_size=8",
         "--checkpoint_every=2", "--summary_every=1", "--image_every=2", "--precision=float32"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = run_evaluate(f"--workdir={workdir}", "--num_per_class=3", "--inception_weights=none",
                          f"--json={tmp_path / 'report.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cas" in result.stdout and "Report:" in result.stdout
    report = json.load(open(tmp_path / "report.json"))
    assert report["step"] == 2 and 0.0 <= report["metrics"]["cas"] <= 1.0
    missing = run_evaluate(f"--workdir={tmp_path / 'nothing'}")
    assert missing.returncode == 2 and error_lines(missing)[0].startswith("evaluate: error: --workdir=")
