"""cgan.evaluation.evaluate and the feature extractors, on a small class-folder fixture (3 classes, 56 train and 24 test
images) and on the tiny ISIC-layout one (18 train, 9 test images)."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from cgan.evaluation import evaluate, report as evaluation_report, tool

from cgan.inputs import datasets, input_pipeline

from cgan.model import sampling
from cgan.core.errors import UserError
from cgan.evaluation.metrics import classifier, cross_fit, inception
from conftest import (LATENT_DIM, error_lines, find_picture, make_run, read_scalars, run_python, tiny_generator,
                      write_jpeg)

QUICK = classifier.ClassifierSettings(epochs=6, batch_size=8, flips="horizontal_and_vertical")
FOLDER_CLASSES = ("amber", "cobalt", "moss")
FOLDER_COLOURS = ((200, 120, 40), (40, 70, 200), (70, 160, 60))
TRAIN_COUNTS = (24, 24, 28)   # halves 12/12/14, so H1 and H2 hold 6/6/7: enough for k-NN coverage (k = 5) per class
TEST_PER_CLASS = 8


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Train/ and Test/ class folders: class-coloured 64×64 pictures, each with its own random blobs."""
    root = tmp_path_factory.mktemp("folders")
    rng = np.random.default_rng(0)
    for colour, name, train_count in zip(FOLDER_COLOURS, FOLDER_CLASSES, TRAIN_COUNTS):
        for split, count in (("Train", train_count), ("Test", TEST_PER_CLASS)):
            for i in range(count):
                image = np.array(colour, np.float64) + rng.normal(0, 12, (64, 64, 3))
                for _ in range(3):
                    y, x, r = rng.integers(8, 56), rng.integers(8, 56), rng.integers(3, 9)
                    yy, xx = np.ogrid[:64, :64]
                    image[(yy - y) ** 2 + (xx - x) ** 2 < r * r] *= rng.uniform(0.4, 0.8)
                write_jpeg(root / split / name / f"{name}_{i:02d}.jpg", np.clip(image, 0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def folders_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("folders_tfds")


@pytest.fixture(scope="module")
def builder(folders, folders_data_dir):
    return datasets.prepare("isic_skin_cancer/folders_64", str(folders_data_dir), str(folders))


@pytest.fixture(scope="module")
def class_names(builder):
    return datasets.class_names(builder)


@pytest.fixture(scope="module")
def evaluator(builder, class_names):
    """Trains the three classifiers once, cached next to the fixture dataset for every later Evaluator."""
    return evaluate.Evaluator(builder, class_names, 64, num_per_class=4, seed=0, inception_weights="none",
                              classifier_settings=QUICK)


@pytest.fixture(scope="module")
def evaluator_without_cas(evaluator, builder, class_names):
    return evaluate.Evaluator(builder, class_names, 64, num_per_class=4, seed=0, inception_weights="none",
                              classifier_settings=QUICK, train_cas=False)


@pytest.fixture(scope="module")
def inception_weights_file(tmp_path_factory):
    """Random InceptionV3 weights saved as a local file: the path a user without internet passes."""
    path = str(tmp_path_factory.mktemp("inception") / "inception_v3_notop.weights.h5")
    inception.build(None).save_weights(path)
    return path


def splits(builder):
    return input_pipeline.load_split(builder, "train"), input_pipeline.load_split(builder, "test")


def pools_of(images, labels, counts):
    """Per class c, counts[c] images of label c taken cyclically from `images`: a stand-in generator."""
    return [np.resize(images[labels == label], (count,) + images.shape[1:]) for label, count in enumerate(counts)]


def test_generated_counts_cover_every_use(evaluator):
    expected = np.max([np.full(3, 4), evaluator.distance_counts, TRAIN_COUNTS], axis=0)
    np.testing.assert_array_equal(evaluator.generated_counts, expected)
    np.testing.assert_array_equal(evaluator.train_counts, TRAIN_COUNTS)
    np.testing.assert_array_equal(evaluator.distance_counts, [6, 6, 7])  # ⌊half / 2⌋ per class


def test_no_seed_serves_two_classes_and_every_image_is_the_one_sample_py_writes(evaluator, monkeypatch):
    generator = tiny_generator(num_classes=3)
    calls = []
    real_generate = sampling.generate

    def recording_generate(model, label, seeds, latent_dim, truncation=None):
        calls.append((label, list(seeds)))
        return real_generate(model, label, seeds, latent_dim, truncation)

    monkeypatch.setattr(sampling, "generate", recording_generate)
    generated = evaluator.generate(generator, LATENT_DIM)
    monkeypatch.undo()
    seeds = [seed for _, class_seeds in calls for seed in class_seeds]
    assert len(seeds) == len(set(seeds)) == sum(evaluator.generated_counts)
    for label, class_seeds in calls:
        assert class_seeds == list(range(label * evaluate.SEED_STRIDE,
                                         label * evaluate.SEED_STRIDE + evaluator.generated_counts[label]))
    # Image 5 of class 2 is sample.py --label=2 --seed=2*STRIDE's image 5, drawn on its own.
    alone = sampling.generate(generator, 2, [2 * evaluate.SEED_STRIDE + 5], LATENT_DIM)
    np.testing.assert_array_equal(generated[2][5], alone[0])


def test_classifier_is_cached_and_reused_and_retrained_for_other_data(builder, class_names, tmp_path, monkeypatch):
    train, test = splits(builder)
    one_epoch, two_epochs = (classifier.ClassifierSettings(epochs=e, batch_size=8, flips="none") for e in (1, 2))
    first = classifier.load_or_train(builder, class_names, train, test, one_epoch, str(tmp_path))
    model_path = tmp_path / classifier.MODEL_FILE
    assert not first.cached and model_path.exists() and (tmp_path / classifier.INFO_FILE).exists()
    mtime = model_path.stat().st_mtime_ns

    def must_not_train(*args, **kwargs):
        raise AssertionError("retrained although the cache matches")

    monkeypatch.setattr(classifier, "train_classifier", must_not_train)
    second = classifier.load_or_train(builder, class_names, train, test, one_epoch, str(tmp_path))
    assert second.cached and model_path.stat().st_mtime_ns == mtime
    assert second.info["test_accuracy"] == first.info["test_accuracy"]
    np.testing.assert_allclose(second.features(test[0]), first.features(test[0]), rtol=1e-5, atol=1e-6)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporaries left

    monkeypatch.undo()
    other = classifier.load_or_train(builder, class_names, train, test, two_epochs, str(tmp_path))
    assert not other.cached and json.load(open(tmp_path / classifier.INFO_FILE))["settings"]["epochs"] == 2
    # Same count, other images (a changed split): the digest differs, so the cache is not reused.
    images, labels = train
    swapped = (images[::-1].copy(), labels[::-1].copy())
    again = classifier.load_or_train(builder, class_names, swapped, test, two_epochs, str(tmp_path))
    assert not again.cached and again.info["train_sha256"] != other.info["train_sha256"]


def test_classifier_test_accuracy_is_the_real_classifier_on_the_test_split(evaluator, builder):
    test_images, test_labels = input_pipeline.load_split(builder, "test")
    assert evaluator.classifier.accuracy(test_images, test_labels) == evaluator.classifier.info["test_accuracy"]
    assert evaluator.classifier.info["test_accuracy"] >= 0.9  # the fixture's classes differ in colour


def test_reference_is_never_an_image_its_feature_classifier_was_trained_on(evaluator, builder):
    (train_images, train_labels), _ = splits(builder)
    assert len(evaluator.folds) == 2
    halves = [fold.train_indices for fold in evaluator.folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(halves)), np.arange(len(train_labels)))
    for fold in evaluator.folds:
        held_in = set(fold.train_indices.tolist())
        # The classifier was trained on exactly its half: its cache key is the digest of those images.
        assert fold.classifier.info["train_sha256"] == classifier.data_digest(
            train_images[fold.train_indices], train_labels[fold.train_indices])
        assert fold.classifier.info["settings"]["epochs"] == 2 * QUICK.epochs
        assert held_in.isdisjoint(fold.reference_indices.tolist())
        np.testing.assert_array_equal(np.bincount(train_labels[fold.train_indices]), np.array(TRAIN_COUNTS) // 2)
        for h1, h2 in fold.split_train_indices():
            assert held_in.isdisjoint(h1.tolist()) and held_in.isdisjoint(h2.tolist())
            assert set(h1.tolist()).isdisjoint(h2.tolist())
            assert sorted(h1.tolist() + h2.tolist()) == sorted(fold.reference_indices.tolist())
        # The reference features are those of the held-out half in this fold's classifier space.
        np.testing.assert_allclose(evaluator._reference["classifier"][fold.index],
                                   fold.classifier.features(train_images[fold.reference_indices]), atol=1e-5)


def test_cas_is_trained_on_generated_images_only_and_scored_on_the_real_test_split(evaluator, builder, monkeypatch):
    (_, _), (test_images, test_labels) = splits(builder)
    counts = evaluator.generated_counts
    trained_on = []
    real_train = classifier.train_classifier

    def recording_train(images, labels, num_classes, settings=QUICK):
        trained_on.append((images, labels, settings))
        return real_train(images, labels, num_classes, settings)

    monkeypatch.setattr(classifier, "train_classifier", recording_train)
    real_pools = pools_of(test_images, test_labels, counts)      # a "generator" drawing real test images
    real_values = evaluator.measure(real_pools)
    noise = [np.random.default_rng(label).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)
             for label, count in enumerate(counts)]
    noise_values = evaluator.measure(noise)

    assert len(trained_on) == 2  # one CAS classifier per evaluation; the cached ones are not retrained
    images, labels, settings = trained_on[0]
    np.testing.assert_array_equal(images, np.concatenate([pool[:n] for pool, n in zip(real_pools, TRAIN_COUNTS)]))
    np.testing.assert_array_equal(labels, np.repeat(np.arange(3), TRAIN_COUNTS))
    assert settings == QUICK  # the real classifier's recipe
    np.testing.assert_array_equal(trained_on[1][0], np.concatenate([n[:c] for n, c in zip(noise, TRAIN_COUNTS)]))

    assert real_values["cas"] >= 0.9 and real_values["gan_test"] >= 0.9
    assert noise_values["cas"] <= 0.5  # chance is 1/3 on the balanced test split
    assert real_values["cas"] - noise_values["cas"] >= 0.4
    for name in ("cas", "gan_test", "classifier_test_accuracy"):
        assert {f"{name}/{c}" for c in FOLDER_CLASSES} <= set(real_values)
    assert real_values["cas_ratio"] == pytest.approx(real_values["cas"] / real_values["classifier_test_accuracy"])


class MemorisingClassifier:
    """A feature extractor that tells its own training images apart (a trained CNN does so more subtly):
    images it was trained on get a large offset in one extra feature."""

    def __init__(self, train_images, train_labels, settings=None):
        self.settings = settings
        self.seen = {image.tobytes() for image in train_images}
        self.info = {"test_accuracy": 1.0, "test_accuracy_per_class": {}}
        self.cached, self.cache_dir = False, None
        base = self._base(train_images)
        self.centres = np.stack([base[train_labels == label].mean(0) for label in np.unique(train_labels)])

    @staticmethod
    def _base(images):
        pixels = images.reshape(len(images), images.shape[1] * images.shape[2], 3).astype(np.float64) / 255.0
        return np.concatenate([pixels.mean(1), pixels.std(1), pixels[:, 1000:1002, 0]], axis=1)   # [N, 8]

    def features(self, images):
        flag = np.array([[50.0 * (image.tobytes() in self.seen)] for image in images]).reshape(-1, 1)
        return np.concatenate([self._base(images), flag], axis=1)                                  # [N, 9]

    def predict(self, images):
        base = self._base(images)
        return np.argmin(((base[:, None, :] - self.centres[None]) ** 2).sum(-1), axis=1)

    def accuracy_per_class(self, images, labels, class_names):
        return classifier.accuracy_per_class(self.predict(images), labels, class_names)


def test_a_memorising_generator_no_longer_scores_better_than_held_out_real_images(builder, class_names, monkeypatch):
    def memorising_load_or_train(builder, class_names, train, test, settings=None, cache_dir=None):
        return MemorisingClassifier(*train, settings=settings)

    monkeypatch.setattr(classifier, "load_or_train", memorising_load_or_train)
    evaluator = evaluate.Evaluator(builder, class_names, 64, num_per_class=4, inception_weights="none",
                                   train_cas=False, cache_dir="unused")
    (train_images, train_labels), (test_images, test_labels) = splits(builder)
    counts = evaluator.generated_counts
    held_in = evaluator.folds[0].train_indices     # what feature classifier 0 was trained on
    memorised = evaluator.measure(pools_of(train_images[held_in], train_labels[held_in], counts))
    held_out = evaluator.measure(pools_of(test_images, test_labels, counts))
    assert memorised["classifier_fd"] > 2 * held_out["classifier_fd"]
    assert memorised["classifier_fd_ratio"] > held_out["classifier_fd_ratio"]
    assert memorised["classifier_recall"] < held_out["classifier_recall"]

    # Measured against the images the feature classifier was trained on (the whole split, as before
    # cross-fitting), the same memorising generator would have scored far better.
    from cgan.evaluation import metrics
    whole = MemorisingClassifier(train_images, train_labels)
    reference = whole.features(train_images)
    old_memorised = metrics.compute(reference, whole.features(np.concatenate(
        pools_of(train_images[held_in], train_labels[held_in], counts))))["fd"]
    old_held_out = metrics.compute(reference, whole.features(np.concatenate(
        pools_of(test_images, test_labels, counts))))["fd"]
    assert old_memorised < old_held_out / 2


def test_per_class_figures_with_floors_for_every_class_and_the_worst_class_named(evaluator, evaluator_without_cas):
    report = evaluator.report(tiny_generator(num_classes=3), LATENT_DIM, step=3)
    assert "report_card" not in report     # the in-training evaluation draws no card
    values = {name: value for name, value in report["metrics"].items() if value is not None}
    for name in ("classifier_test_accuracy", "gan_test", "gan_test_ratio", "cas", "cas_ratio", "classifier_fd",
                 "classifier_fd_floor", "classifier_fd_ratio", "classifier_kid", "classifier_kid_floor",
                 "classifier_precision", "classifier_precision_floor", "classifier_recall",
                 "classifier_recall_floor", "classifier_recall_class_mean", "classifier_recall_class_min",
                 "classifier_recall_floor_class_mean", "classifier_fd_ratio_class_max"):
        assert np.isfinite(values[name]), name
    for class_name in FOLDER_CLASSES:
        for name in ("classifier_fd", "classifier_fd_floor", "classifier_fd_ratio", "classifier_recall",
                     "classifier_recall_floor", "gan_test", "cas"):
            assert np.isfinite(values[f"{name}/{class_name}"]), (name, class_name)
        assert values[f"classifier_fd_ratio/{class_name}"] == pytest.approx(
            values[f"classifier_fd/{class_name}"] / values[f"classifier_fd_floor/{class_name}"])
        for name in ("classifier_coverage", "classifier_coverage_floor", "classifier_density", "structure_diversity",
                     "structure_diversity_real", "structure_diversity_ratio", "assigned_elsewhere"):
            assert np.isfinite(values[f"{name}/{class_name}"]), (name, class_name)
        assert 0.0 <= values[f"classifier_coverage/{class_name}"] <= 1.0
        assert values[f"assigned_elsewhere/{class_name}"] == pytest.approx(1.0 - values[f"gan_test/{class_name}"])
        assert values[f"structure_diversity_ratio/{class_name}"] == pytest.approx(
            values[f"structure_diversity/{class_name}"] / values[f"structure_diversity_real/{class_name}"])
    recalls = {c: values[f"classifier_recall/{c}"] for c in FOLDER_CLASSES}
    ratios = {c: values[f"classifier_fd_ratio/{c}"] for c in FOLDER_CLASSES}
    coverages = {c: values[f"classifier_coverage/{c}"] for c in FOLDER_CLASSES}
    structure_ratios = {c: values[f"structure_diversity_ratio/{c}"] for c in FOLDER_CLASSES}
    assert values["classifier_recall_class_min"] == min(recalls.values())
    assert values["classifier_coverage_class_min"] == min(coverages.values())
    assert values["classifier_coverage_class_mean"] == pytest.approx(np.mean(list(coverages.values())))
    assert values["structure_diversity_ratio_class_min"] == min(structure_ratios.values())
    assert values["assigned_elsewhere_class_max"] == pytest.approx(
        max(1.0 - values[f"gan_test/{c}"] for c in FOLDER_CLASSES))
    assert not any(name.startswith(("fid", "kid", "classifier_kid_std")) for name in values)
    again = evaluator_without_cas.evaluate(tiny_generator(num_classes=3), LATENT_DIM)
    assert again == {k: v for k, v in values.items() if not k.startswith("cas")}  # same seeds, same numbers

    worst = evaluation_report.worst_classes(values, FOLDER_CLASSES)
    assert worst["lowest_recall"]["class"] == min(recalls, key=recalls.get)
    assert worst["highest_fd_ratio"]["class"] == max(ratios, key=ratios.get)
    assert report["worst_class"] == worst
    lines = evaluation_report.summary_lines(report)
    main_line = next(line for line in lines if line.startswith("classifier_test_accuracy"))
    assert f"lowest recall {worst['lowest_recall']['class']}" in main_line
    assert f"highest FD/floor {worst['highest_fd_ratio']['class']}" in main_line
    assert worst["lowest_coverage"]["class"] == min(coverages, key=coverages.get)
    assert f"lowest coverage {worst['lowest_coverage']['class']}" in main_line
    assert any(line.startswith("structure diversity / real (colour-blind)") for line in lines)
    assert sum(line.startswith(FOLDER_CLASSES) for line in lines) == 3  # the per-class table


def test_worst_classes_pick_lowest_recall_and_highest_fd_ratio():
    values = {"classifier_recall/a": 0.6, "classifier_recall/b": 0.1, "classifier_recall/c": 0.4,
              "classifier_recall_floor/b": 0.7, "classifier_fd_ratio/a": 5.0, "classifier_fd_ratio/b": 2.0,
              "classifier_fd/a": 10.0, "classifier_fd_floor/a": 2.0}
    worst = evaluation_report.worst_classes(values, ("a", "b", "c"))
    assert worst["lowest_recall"] == {"class": "b", "recall": 0.1, "recall_floor": 0.7}
    assert worst["highest_fd_ratio"] == {"class": "a", "fd_ratio": 5.0, "fd": 10.0, "fd_floor": 2.0}
    assert evaluation_report.worst_classes({}, ("a",)) == {
        "lowest_recall": None, "lowest_coverage": None, "lowest_structure_diversity": None,
        "highest_fd_ratio": None, "most_assigned_elsewhere": None}


def test_description_records_seeds_and_reference_sizes(evaluator):
    described = evaluator.description()
    assert "+ c * 1000000 + i" in described["generated"]["seeds"]
    folds = described["real"]["reference"]["folds"]
    assert [fold["reference_count"] for fold in folds] == [38, 38]
    assert folds[0]["h1_counts"] == dict(zip(FOLDER_CLASSES, [6, 6, 7]))
    assert all(fold["h1_count"] == 19 and fold["h2_count"] == 19 for fold in folds)
    assert described["inception"]["note"] == evaluate.FID_NOTE and "published" in evaluate.FID_NOTE


def test_inception_metrics_with_a_local_weights_file(evaluator, builder, class_names, inception_weights_file):
    evaluator = evaluate.Evaluator(builder, class_names, 64, num_per_class=2, inception_weights=inception_weights_file,
                                   classifier_settings=QUICK, train_cas=False, num_splits=1)
    report = evaluator.report(tiny_generator(num_classes=3), LATENT_DIM, step=1)
    values = report["metrics"]
    for name in ("fid", "fid_floor", "fid_ratio", "kid", "kid_floor", "inception_precision", "inception_recall",
                 "inception_recall_floor", "fid/moss", "fid_floor/moss", "kid/cobalt", "gan_test", "classifier_fd"):
        assert np.isfinite(values[name]), name
    assert "cas" not in values
    described = evaluator.description()["inception"]
    assert described["weights"] == inception_weights_file and "299x299" in described["resize"]
    assert described["note"] == evaluate.FID_NOTE
    cached = os.listdir(os.path.join(builder.data_dir, evaluate.INCEPTION_CACHE_DIR))
    assert cached == [f"train_{evaluator.inception.digest()[:16]}.npy"]
    assert any("published FIDs" in line for line in evaluation_report.summary_lines(report))


def test_unreachable_imagenet_weights_warn_in_one_line_and_keep_offline_metrics(
        evaluator, builder, class_names, monkeypatch, caplog):
    def offline(weights=None):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x_notop.h5: None -- [Errno -2] "
                        "Name or service not known")

    monkeypatch.setattr(inception, "build", offline)
    with caplog.at_level(logging.WARNING):
        evaluator = evaluate.Evaluator(builder, class_names, 64, num_per_class=4, inception_weights="imagenet",
                                       classifier_settings=QUICK, train_cas=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "Inception metrics (FID, KID) skipped" in warnings[0] and "--inception_weights=PATH" in warnings[0]
    assert "cannot get the ImageNet" in evaluator.description()["inception"]["skipped"]
    values = evaluator.evaluate(tiny_generator(num_classes=3), LATENT_DIM)
    assert "gan_test" in values and "classifier_fd" in values and "fid" not in values


def test_missing_inception_weights_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        inception.load(str(tmp_path / "missing.h5"))


def test_two_images_per_class_give_overall_distances_and_no_per_class_ones(isic_data_dir, monkeypatch):
    def memorising_load_or_train(builder, class_names, train, test, settings=None, cache_dir=None):
        return MemorisingClassifier(*train, settings=settings)

    monkeypatch.setattr(classifier, "load_or_train", memorising_load_or_train)
    tiny = datasets.prepare("isic_skin_cancer/real_64", str(isic_data_dir))  # 2 train images per class
    evaluator = evaluate.Evaluator(tiny, datasets.class_names(tiny), 64, num_per_class=2, inception_weights="none",
                                   train_cas=False, cache_dir="unused")
    # Halves of 1 image per class; each held-out half of 9 images splits into H1 and H2 of 4 and 5.
    assert [len(h1) for fold in evaluator.folds for h1, _ in fold.splits] == [4] * 2 * cross_fit.NUM_SPLITS
    values = evaluator.evaluate(tiny_generator(9), LATENT_DIM)
    assert 0.0 <= values["gan_test"] <= 1.0
    assert np.isfinite(values["classifier_fd"]) and np.isfinite(values["classifier_fd_floor"])
    assert not any("/" in name and name.startswith("classifier_fd") for name in values)  # ≤ 1 image per class
    assert evaluation_report.worst_classes(values, evaluator.class_names)["lowest_recall"] is None


def test_features_of_no_images_are_an_empty_array():
    model = classifier.Classifier(classifier.build_classifier(64, 3, QUICK), {})
    empty = np.zeros((0, 64, 64, 3), np.uint8)
    assert model.features(empty).shape == (0, 128) and model.predict(empty).shape == (0,)


def test_evaluate_a_run_writes_a_comparable_report_and_scalars(evaluator, tmp_path, folders_data_dir, folders,
                                                               class_names):
    """The command's path: cache next to the dataset (filled by the evaluator fixture), JSON, TensorBoard."""
    workdir = tmp_path / "run"
    make_run(workdir, class_names, "isic_skin_cancer/folders_64", folders_data_dir, folders, step=7)
    report, path = tool.measure_workdir(evaluate, str(workdir), evaluate.Settings(num_per_class=3, seed=5, inception_weights="none"),
                                        classifier_settings=QUICK)
    assert path == str(workdir / "eval" / "report_step_000007.json")
    saved = json.load(open(path))
    assert saved["step"] == 7 and saved["dataset"] == "isic_skin_cancer/folders_64/1.0.0"
    assert saved["generated"]["num_per_class"] == 3 and saved["generated"]["seed"] == 5
    assert saved["inception"]["skipped"] == "disabled (--inception_weights=none)"
    assert "published FIDs" in saved["inception"]["note"]
    assert saved["classifier"]["settings"]["epochs"] == QUICK.epochs and saved["classifier"]["cached"]
    assert [f["settings"]["epochs"] for f in saved["feature_classifiers"]] == [2 * QUICK.epochs] * 2
    assert saved["metrics"]["cas"] == report["metrics"]["cas"]
    assert saved["worst_class"]["lowest_recall"]["class"] in FOLDER_CLASSES
    scalars = read_scalars(str(workdir / "eval"))
    assert scalars["eval/cas"] == (7, pytest.approx(report["metrics"]["cas"]))
    assert scalars["eval/classifier_fd_floor"] == (7, pytest.approx(report["metrics"]["classifier_fd_floor"]))
    expected = {"eval/gan_test", "eval/gan_test/moss", "eval/cas/amber", "eval/classifier_fd",
                "eval/classifier_fd_ratio", "eval/classifier_recall_class_min"}
    expected |= {f"eval/{name}/{c}" for c in FOLDER_CLASSES
                 for name in ("classifier_fd", "classifier_fd_floor", "classifier_recall", "classifier_recall_floor")}
    assert expected <= set(scalars)
    cache = datasets.prepare("isic_skin_cancer/folders_64", str(folders_data_dir), str(folders)).data_dir
    assert {"classifier", "classifier_half0", "classifier_half1"} <= set(os.listdir(cache))

    # The report card beside the JSON, named in the report and in the summary: each class's first real
    # training image in it.
    card_path = str(workdir / "eval" / "report_step_000007.png")
    assert report["report_card"] == saved["report_card"] == card_path
    assert f"Report card: {card_path}" in evaluate.summary_lines(report)
    card = tf.io.decode_png(open(card_path, "rb").read()).numpy()                       # [H, W, 3]
    (train_images, train_labels), _ = splits(datasets.prepare("isic_skin_cancer/folders_64", str(folders_data_dir)))
    places = [find_picture(card, train_images[np.flatnonzero(train_labels == label)[0]])
              for label in range(len(FOLDER_CLASSES))]
    assert all(len(found) == 1 for found in places) and places == sorted(places)
    # --json=PATH: the card is PATH with .png.
    quicker = evaluate.Settings(num_per_class=2, inception_weights="none")
    report, _ = tool.measure_workdir(evaluate, str(workdir), quicker, json_path=str(tmp_path / "custom.json"),
                                     train_cas=False, classifier_settings=QUICK)
    assert report["report_card"] == str(tmp_path / "custom.png") and os.path.isfile(tmp_path / "custom.png")


def test_evaluate_explains_bad_input(tmp_path, builder, class_names):
    with pytest.raises(UserError, match="is not a directory"):
        tool.measure_workdir(evaluate, str(tmp_path / "missing"), evaluate.Settings())
    with pytest.raises(UserError, match="no generator.keras"):
        tool.measure_workdir(evaluate, str(tmp_path), evaluate.Settings())
    with pytest.raises(UserError, match="num_per_class=1"):
        evaluate.Evaluator(builder, class_names, 64, num_per_class=1)
    with pytest.raises(UserError, match="not those of"):
        evaluate.Evaluator(builder, class_names[:2], 64)
    with pytest.raises(UserError, match="128x128"):
        evaluate.Evaluator(builder, class_names, 128, inception_weights="none", classifier_settings=QUICK)


def test_seeds_beyond_the_sampler_range_are_a_user_error(builder, class_names, monkeypatch):
    monkeypatch.setattr(classifier, "train_classifier", None)  # refused before any classifier is trained
    with pytest.raises(UserError, match=r"--seed=2147000000 is too large: .*use --seed ≤ 2145483620$"):
        evaluate.Evaluator(builder, class_names, 64, num_per_class=4, seed=2_147_000_000, inception_weights="none",
                           classifier_settings=QUICK, cache_dir="unused")
    largest = 2145483620
    last = largest + 2 * evaluate.SEED_STRIDE + 28 - 1   # class 2's last CAS image
    assert last == evaluate.SEED_MAX


def run_evaluate(*flags):
    return run_python("-m", "cgan.evaluate", *flags)


@pytest.mark.slow
def test_cli_reports_bad_flags_in_one_line(tmp_path):
    result = run_evaluate(f"--workdir={tmp_path}", "--num_per_class=0")
    assert result.returncode == 2
    lines = error_lines(result, "evaluate")
    assert len(lines) == 1 and "num_per_class" in lines[0] and result.stderr.strip().endswith(lines[0])


@pytest.mark.slow
def test_cli_evaluates_a_run_made_by_the_trainer(tmp_path, isic_folders):
    workdir, data_dir = tmp_path / "run", tmp_path / "tfds"
    trained = run_python("trainer.py", f"--workdir={workdir}", "--dataset=isic_skin_cancer/real_64",
                         f"--data_dir={data_dir}", f"--manual_dir={isic_folders}", "--train_steps=2",
                         "--batch_size=8", "--checkpoint_every=2", "--summary_every=1", "--image_every=2",
                         "--precision=float32")
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = run_evaluate(f"--workdir={workdir}", "--num_per_class=3", "--inception_weights=none",
                          "--classifier_flips=horizontal", f"--json={tmp_path / 'report.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gan_test" in result.stdout and "cas" in result.stdout and "Report:" in result.stdout
    assert "worst class:" in result.stdout
    assert f"Report card: {tmp_path / 'report.png'}" in result.stdout and (tmp_path / "report.png").is_file()
    report = json.load(open(tmp_path / "report.json"))
    assert report["step"] == 2 and 0.0 <= report["metrics"]["cas"] <= 1.0
    assert report["metrics"]["classifier_fd_floor"] is not None
    assert report["classifier"]["settings"]["flips"] == "horizontal"     # as asked, not chosen
