"""cgan.evaluation.memorisation: a generator that returns training images is flagged, one that returns new ones is not."""

import dataclasses
import json
import os

import numpy as np
import pytest

from cgan.evaluation import memorisation, tool

from cgan.model import sampling

from cgan.run import run_source

from cgan.share import dataset_export
from cgan.core.errors import UserError
from cgan.evaluation.metrics import classifier
from conftest import IMBALANCED_CLASSES as CLASSES
from conftest import LATENT_DIM, error_lines, make_imbalanced_run, read_scalars, run_python

QUICK = classifier.ClassifierSettings(epochs=1, batch_size=8, flips="none")


class PoolGenerator:
    """A stand-in for a Keras generator: returns the pictures of a fixed pool, class by class, in order
    (none twice until the class's pictures are used up).

    Called as sampling.generate calls a generator: ([z [B, latent], labels [B]], training) -> [B, R, R, 3]
    in [-1, 1].
    """

    def __init__(self, pool, pool_labels):
        self.pool, self.pool_labels = pool, np.asarray(pool_labels)
        self.served = {}

    def __call__(self, inputs, training=False):
        picked = []
        for label in np.asarray(inputs[1]):
            members = np.flatnonzero(self.pool_labels == label)
            count = self.served.get(int(label), 0)
            self.served[int(label)] = count + 1
            picked.append(self.pool[members[count % len(members)]])
        return np.stack(picked).astype(np.float32) / 127.5 - 1.0


def noise_images(rng, per_class, side=16):
    """Class-tinted noise: [3·per_class, side, side, 3] uint8 and [3·per_class] labels."""
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    tint = np.array([[60, 0, 0], [0, 60, 0], [0, 0, 60]])[labels][:, None, None, :]
    pictures = np.clip(rng.integers(60, 196, (len(labels), side, side, 3)) + tint, 0, 255).astype(np.uint8)
    return pictures, labels


@pytest.fixture(scope="module")
def splits():
    rng = np.random.default_rng(0)
    return {name: noise_images(rng, per_class) for name, per_class in
            (("train", 40), ("test", 200), ("held_out", 200))}


def projection_features(pictures):
    """A fixed random projection: a feature space that is not the pixels."""
    weights = np.random.default_rng(1).normal(size=(int(np.prod(pictures.shape[1:])), 16)).astype(np.float32)
    return memorisation.pixel_vectors(pictures) @ weights


def generate_from(generator, per_class=200):
    seeds = dataset_export.allocate_seeds([per_class] * len(CLASSES), 0)
    pictures = np.concatenate([sampling.generate(generator, label, s, LATENT_DIM) for label, s in enumerate(seeds)])
    return pictures, np.repeat(np.arange(len(CLASSES)), per_class)


def test_nearest_matches_brute_force():
    rng = np.random.default_rng(2)
    queries, references = rng.normal(size=(700, 5)), rng.normal(size=(30, 5))
    distances, indices = memorisation.nearest(queries, references)
    brute = np.linalg.norm(queries[:, None, :] - references[None, :, :], axis=2)
    np.testing.assert_array_equal(indices, brute.argmin(axis=1))
    np.testing.assert_allclose(distances, brute.min(axis=1), rtol=1e-5, atol=1e-5)


def test_a_generator_that_returns_training_images_is_flagged(splits):
    train, test = splits["train"], splits["test"]
    generated, labels = generate_from(PoolGenerator(*train), per_class=40)
    result = memorisation.compare(generated, labels, train, test, CLASSES, projection_features)
    for space in memorisation.SPACES:
        overall = result.report[space]["overall"]
        assert overall["share_below"] == 1.0 and overall["flagged"] and overall["expected_share"] == 0.05
        assert all(values["flagged"] and values["share_below"] == 1.0
                   for values in result.report[space]["per_class"].values())
    distances, indices = result.nearest["pixels"]
    np.testing.assert_allclose(distances, 0.0, atol=1e-2)                   # exact copies
    np.testing.assert_array_equal(train[0][indices], generated)


def test_a_generator_that_returns_held_out_images_passes(splits):
    train, test = splits["train"], splits["test"]
    generated, labels = generate_from(PoolGenerator(*splits["held_out"]))
    result = memorisation.compare(generated, labels, train, test, CLASSES, projection_features)
    for space in memorisation.SPACES:
        overall = result.report[space]["overall"]
        assert overall["share_below"] < 0.1 and overall["flagged"] is False
        assert not any(values["flagged"] for values in result.report[space]["per_class"].values())
        assert overall["median_generated"] == pytest.approx(overall["median_test"], rel=0.1)
        assert result.report[space]["per_class"]["beta"]["test_images"] == 200


def test_thresholds_are_the_percentile_of_each_class(splits):
    train, test = splits["train"], splits["test"]
    generated, labels = generate_from(PoolGenerator(*splits["held_out"]), per_class=5)
    result = memorisation.compare(generated, labels, train, test, CLASSES, projection_features, percentile=20)
    test_distances, _ = memorisation.nearest(memorisation.pixel_vectors(test[0]), memorisation.pixel_vectors(train[0]))
    scale = 255.0 / np.sqrt(16 * 16 * 3)
    expected = np.percentile(test_distances[test[1] == 2], 20) * scale
    assert result.report["pixels"]["per_class"]["gamma"]["threshold"] == pytest.approx(expected)
    assert result.report["percentile"] == 20.0


@pytest.mark.parametrize("percentile", [0, 100, -5])
def test_a_percentile_outside_0_100_is_a_user_error(splits, percentile):
    with pytest.raises(UserError, match=f"--percentile={percentile:g} is out of range"):
        memorisation.compare(splits["test"][0], splits["test"][1], splits["train"], splits["test"], CLASSES,
                             projection_features, percentile=percentile)


def test_pairs_picture_puts_each_generated_image_beside_its_training_image(splits):
    train = splits["train"]
    generated, labels = generate_from(PoolGenerator(*train), per_class=3)
    result = memorisation.compare(generated, labels, train, splits["test"], CLASSES, projection_features)
    pairs = memorisation.closest_pairs(result, "pixels", count=5)
    assert len(pairs) == 5 and [d for *_, d in pairs] == sorted(d for *_, d in pairs)
    picture = memorisation.pairs_picture(pairs, generated, labels, train[0], CLASSES, columns=4)
    zoom, side = 6, 96                                  # 16-pixel images enlarged to 96
    assert picture.shape == (2 * (side + 14) + 6, 4 * (2 * side + 2) + 3 * 6, 3)
    top = 14                                            # below the caption
    left_half = picture[top:top + side, :side]
    right_half = picture[top:top + side, side + 2:2 * side + 2]
    np.testing.assert_array_equal(left_half[::zoom, ::zoom], generated[pairs[0][0]])
    np.testing.assert_array_equal(right_half[::zoom, ::zoom], train[0][pairs[0][1]])
    assert (picture[:top, :side] < 128).any()           # the caption is drawn


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_imbalanced_run(tmp_path_factory.mktemp("imbalanced"), train_counts=(6, 4, 3), test_counts=(4, 4, 4))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("classifier_cache"))


def test_check_flags_a_copying_generator_in_the_classifier_space(run, cache_dir):
    source = run_source.load_workdir(run[0])
    copying = dataclasses.replace(source, generator=PoolGenerator(*source.train))
    result, generated, labels, seeds = memorisation.check(copying, memorisation.Settings(num_per_class=4), QUICK,
                                                          cache_dir=cache_dir)
    assert generated.shape == (12, 64, 64, 3) and [s.start for s in seeds] == [0, 4, 8]
    for space in memorisation.SPACES:
        assert result.report[space]["overall"]["share_below"] == 1.0 and result.report[space]["overall"]["flagged"]
    assert result.report["classifier"]["cache_dir"] == cache_dir


def test_measure_run_writes_the_report_the_pictures_and_scalars(run, cache_dir):
    workdir = run[0]
    report, path = tool.measure_workdir(memorisation, workdir, memorisation.Settings(num_per_class=3),
                                        classifier_settings=QUICK, cache_dir=cache_dir)
    assert path == os.path.join(workdir, "eval", "memorisation_step_000005.json")
    saved = json.load(open(path))
    assert saved["num_per_class"] == 3 and saved["percentile"] == 5.0 and "rule of thumb" in saved["rule"]
    assert saved["seeds"]["gamma"] == {"first": 6, "count": 3}
    for space in memorisation.SPACES:
        closest = saved["closest"][space]
        assert len(closest["pairs"]) == 9 and os.path.isfile(closest["picture"])
        assert closest["picture"].endswith(f"memorisation_step_000005_closest_{space}.png")
        assert set(saved[space]["per_class"]) == set(CLASSES)
        assert saved[space]["overall"]["generated_images"] == 9
    scalars = read_scalars(os.path.join(workdir, "eval"))
    assert scalars["memorisation/pixels/share_below"] == (5, pytest.approx(report["pixels"]["overall"]["share_below"]))
    assert "memorisation/features/share_below/beta" in scalars
    lines = memorisation.summary_lines(report)
    assert lines[1].startswith("features") and lines[2].startswith("pixels")


def test_bad_values_and_paths_are_user_errors_that_touch_nothing(run, tmp_path):
    for kwargs, message in [({"num_per_class": 0}, "--num_per_class=0 is out of range"),
                            ({"percentile": 101.0}, "--percentile=101 is out of range"),
                            ({"truncation": 0.01}, "--truncation=0.01 is out of range")]:
        with pytest.raises(UserError, match=message):
            memorisation.Settings(**kwargs)
    with pytest.raises(UserError, match="is not a directory"):
        tool.measure_workdir(memorisation, str(tmp_path / "missing"), memorisation.Settings())
    with pytest.raises(UserError, match="no generator.keras"):
        tool.measure_workdir(memorisation, str(tmp_path), memorisation.Settings())
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_cli_reports_and_refuses_bad_flags_in_one_line(run, tmp_path):
    result = run_python("-m", "cgan.memorisation", f"--workdir={run[0]}", "--num_per_class=2",
                        f"--json={tmp_path / 'm.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "features  overall" in result.stdout and os.path.isfile(tmp_path / "m_closest_pixels.png")
    # The skeleton's refusals, shared by every tool (cgan.evaluation.tool); the tool's own flag checks are
    # tested in-process above.
    for args, message in [([], "--workdir is required"),
                          ([f"--workdir={tmp_path / 'missing'}"], "is not a directory")]:
        result = run_python("-m", "cgan.memorisation", *args)
        lines = error_lines(result, "memorisation")
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr[-2000:])
    assert not (tmp_path / "missing").exists()
