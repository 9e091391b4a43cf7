"""cgan.evaluation.downstream: the metrics, the spread rule, and the report end to end on a tiny imbalanced dataset."""

import json
import os

import numpy as np
import pytest

from cgan.evaluation import downstream, tool

from cgan.run import run_source
from cgan.core.errors import UserError
from conftest import IMBALANCED_CLASSES as CLASSES
from conftest import IMBALANCED_TEST_COUNTS as TEST_COUNTS
from conftest import IMBALANCED_TRAIN_COUNTS as TRAIN_COUNTS
from conftest import error_lines, make_imbalanced_run, read_scalars, run_python

QUICK = dict(seeds=2, epochs=1, batch_size=8, classifier_flips="none")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_imbalanced_run(tmp_path_factory.mktemp("imbalanced"))


def test_classification_metrics_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    values = downstream.classification_metrics(labels, predictions, CLASSES)
    assert values["accuracy"] == pytest.approx(6 / 8)
    assert values["recall/alpha"] == pytest.approx(3 / 4) and values["recall/beta"] == pytest.approx(1 / 2)
    assert values["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 1) / 3)
    f1_alpha = 2 * (3 / 4) * (3 / 4) / (3 / 4 + 3 / 4)          # precision 3/4, recall 3/4
    f1_beta = 2 * (1 / 2) * (1 / 2) / (1 / 2 + 1 / 2)           # precision 1/2, recall 1/2
    assert values["macro_f1"] == pytest.approx((f1_alpha + f1_beta + 1) / 3)


def test_classes_never_predicted_score_zero_and_absent_classes_are_left_out():
    values = downstream.classification_metrics([0, 0, 1], [0, 0, 0], CLASSES)
    assert values["recall/beta"] == 0.0 and values["f1/beta"] == 0.0
    assert "recall/gamma" not in values and values["balanced_accuracy"] == pytest.approx(0.5)


def test_compare_states_mean_std_delta_and_the_spread_rule():
    real = [{"m": 0.50}, {"m": 0.52}, {"m": 0.48}]
    close = [{"m": 0.51}, {"m": 0.53}, {"m": 0.49}]
    far = [{"m": 0.70}, {"m": 0.72}, {"m": 0.68}]
    row = downstream.compare(real, close)["m"]
    assert row["real"]["mean"] == pytest.approx(0.50) and row["real"]["std"] == pytest.approx(0.02)
    assert row["delta"] == pytest.approx(0.01) and row["pooled_std"] == pytest.approx(0.02)
    assert row["beyond_spread"] is False
    assert downstream.compare(real, far)["m"]["beyond_spread"] is True
    assert downstream.compare(real[:1], far[:1])["m"]["beyond_spread"] is None     # one seed: no spread


@pytest.mark.parametrize("kwargs,message", [
    ({"seeds": 0}, "--seeds=0 is out of range"),
    ({"epochs": -1}, "--epochs=-1 is out of range"),
    ({"downstream_classifier": "ResNet5O"}, "--downstream_classifier=ResNet5O is neither small_cnn"),
    ({"downstream_classifier": "applications"}, "is neither small_cnn"),
    ({"truncation": 99.0}, "--truncation=99 is out of range"),
])
def test_bad_settings_are_one_line_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message) as error:
        downstream.Settings(**kwargs)
    assert "\n" not in str(error.value)


def test_application_names_are_the_keras_models():
    names = downstream.application_names()
    assert {"MobileNetV3Small", "EfficientNetB0", "ResNet50"} <= set(names) and "imagenet_utils" not in names


def test_report_end_to_end_on_a_tiny_imbalanced_dataset(run):
    workdir = run[0]
    report, path = tool.measure_workdir(downstream, workdir, downstream.Settings(**QUICK))
    assert path == os.path.join(workdir, "eval", "downstream_step_000005.json")
    assert json.load(open(path)) == json.loads(json.dumps(report))
    largest = max(TRAIN_COUNTS)
    assert report["training_sets"]["real"] == dict(zip(CLASSES, TRAIN_COUNTS))
    assert report["training_sets"]["real+synthetic"] == {name: largest for name in CLASSES}
    assert report["training_sets"]["generated"]["gamma"] == {"first_seed": largest - 3, "count": largest - 1}
    assert report["test_split"] == dict(zip(CLASSES, TEST_COUNTS))
    assert report["classifier"]["name"] == "small_cnn" and report["classifier"]["seeds"] == [0, 1]
    assert "not a significance test" in report["rule"]
    for name in ("balanced_accuracy", "macro_f1", "accuracy", "recall/alpha", "recall/gamma"):
        row = report["metrics"][name]
        for arm in downstream.ARMS:
            assert len(row[arm]["values"]) == 2 and all(0.0 <= v <= 1.0 for v in row[arm]["values"])
            assert row[arm]["mean"] == pytest.approx(np.mean(row[arm]["values"]))
        assert row["delta"] == pytest.approx(row["real+synthetic"]["mean"] - row["real"]["mean"])
        assert row["beyond_spread"] == (abs(row["delta"]) > 2 * row["pooled_std"])
    lines = downstream.summary_lines(report)
    assert any(line.startswith("balanced_accuracy") for line in lines) and lines[-1].startswith("beyond spread:")
    assert sum(line.startswith("recall/") for line in lines) == len(CLASSES)
    scalars = read_scalars(os.path.join(workdir, "eval"))
    assert scalars["downstream/real/balanced_accuracy"] == (
        5, pytest.approx(report["metrics"]["balanced_accuracy"]["real"]["mean"]))
    assert {"downstream/real+synthetic/macro_f1", "downstream/delta/recall/beta"} <= set(scalars)


def test_a_missing_workdir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        tool.measure_workdir(downstream, str(tmp_path / "missing"), downstream.Settings(**QUICK))
    with pytest.raises(UserError, match="no generator.keras"):
        tool.measure_workdir(downstream, str(tmp_path), downstream.Settings(**QUICK))
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_a_keras_application_trains_from_scratch(run):
    source = run_source.load_workdir(run[0])
    predictions = downstream.train_and_predict(source.train, source.test[0], len(CLASSES),
                                               downstream.Settings(downstream_classifier="MobileNetV3Small", **QUICK), seed=0)
    assert predictions.shape == (sum(TEST_COUNTS),) and set(predictions) <= {0, 1, 2}


@pytest.mark.slow
def test_cli_prints_the_table_and_refuses_bad_flags_in_one_line(run, tmp_path):
    result = run_python("-m", "cgan.downstream", f"--workdir={run[0]}", "--seeds=2", "--epochs=1",
                        f"--json={tmp_path / 'r.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "balanced_accuracy" in result.stdout and "beyond spread:" in result.stdout
    assert json.load(open(tmp_path / "r.json"))["classifier"]["epochs"] == 1
    # The shared skeleton's refusals (no --workdir, a missing one) are checked once, with cgan.memorisation.
    result = run_python("-m", "cgan.downstream", f"--workdir={run[0]}", "--downstream_classifier=Nope")
    lines = error_lines(result, "downstream")
    assert result.returncode == 2 and len(lines) == 1 and "--downstream_classifier=Nope" in lines[0], \
        result.stderr[-2000:]
