"""Tests for the procedural lesion images behind the synthetic_* configs.

    python -m pytest tests/test_synthetic.py -q

Besides counts and determinism, they check that the classes are really different: a nearest-
centroid classifier on a few colour and texture statistics must tell them apart, which is the
least a conditional GAN needs from its data.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import data.isic_skin_cancer as isic
from data.isic_skin_cancer import CLASS_NAMES, synthetic

# The Kaggle download's images per class, in CLASS_NAMES order.
KAGGLE_TRAIN = [114, 376, 95, 438, 357, 462, 77, 181, 139]
KAGGLE_TEST = [16, 16, 16, 16, 16, 16, 3, 16, 3]


def _images(class_name: str, count: int, size: int = 64, seed: int = synthetic.SEED, split: str = "train"):
    """The first `count` images of a class, exactly as the builder makes them for this seed."""
    rngs = [synthetic.image_rng(seed, split, class_name, i) for i in range(count)]
    return [synthetic.lesion_image(class_name, size, rng) for rng in rngs]


def test_counts_are_the_kaggle_counts():
    assert set(synthetic.PAINTERS) == set(CLASS_NAMES)
    assert [synthetic.TRAIN_COUNTS[name] for name in CLASS_NAMES] == KAGGLE_TRAIN
    assert [synthetic.TEST_COUNTS[name] for name in CLASS_NAMES] == KAGGLE_TEST
    assert sum(KAGGLE_TRAIN) == 2239 and sum(KAGGLE_TEST) == 118


def test_generate_split_yields_every_index_of_every_class():
    seen = {}
    for class_name, index, image in synthetic.generate_split("test", CLASS_NAMES, size=16):
        seen.setdefault(class_name, []).append(index)
        assert image.shape == (16, 16, 3)
    assert list(seen) == list(CLASS_NAMES)
    assert all(seen[name] == list(range(synthetic.TEST_COUNTS[name])) for name in CLASS_NAMES)


def test_same_seed_same_images_other_seed_other_images():
    for class_name in CLASS_NAMES:
        first = _images(class_name, 3)
        again = _images(class_name, 3)
        other = _images(class_name, 3, seed=synthetic.SEED + 1)
        for a, b, c in zip(first, again, other):
            np.testing.assert_array_equal(a, b)
            assert not np.array_equal(a, c)


@pytest.mark.parametrize("size", [64, 128])
def test_dtype_shape_and_range(size):
    for class_name in CLASS_NAMES:
        for image in _images(class_name, 2, size=size):
            assert image.dtype == np.uint8
            assert image.shape == (size, size, 3)
            assert int(image.max()) - int(image.min()) > 80  # a lesion on skin, not a flat colour


def test_images_vary_within_each_class():
    for class_name in CLASS_NAMES:
        images = np.stack(_images(class_name, 12)).astype(np.float64)  # [12, 64, 64, 3]
        assert len({image.tobytes() for image in images}) == 12
        # Position, size, rotation and colour change: pixels differ a lot across the class.
        assert images.std(axis=0).mean() > 12.0, class_name


def _statistics(image: np.ndarray) -> np.ndarray:
    """Colour quantiles and texture of the image centre, where the lesion is."""
    x = image.astype(np.float64) / 255.0  # [S, S, 3]
    size = x.shape[0]
    coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    centre = np.hypot(*np.meshgrid(coords, coords)) < 0.6  # [S, S]
    pixels = x[centre]  # [N, 3]
    # Redness, yellowness and brightness rather than raw RGB: they separate lesion types better.
    colour = np.stack([pixels[:, 0] - pixels[:, 1], pixels[:, 1] - pixels[:, 2], pixels.mean(-1)], axis=-1)
    quantiles = np.quantile(colour, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0).ravel()
    laplacian = np.abs(4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]).mean(-1)
    return np.append(quantiles, laplacian[centre[1:-1, 1:-1]].mean())


def test_classes_are_distinct_to_a_nearest_centroid_classifier():
    def dataset(split, seed, per_class):
        images = [image for name in CLASS_NAMES for image in _images(name, per_class, seed=seed, split=split)]
        labels = np.repeat(np.arange(len(CLASS_NAMES)), per_class)
        return np.array([_statistics(image) for image in images]), labels

    train_x, train_y = dataset("train", seed=1, per_class=30)
    test_x, test_y = dataset("test", seed=2, per_class=20)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-9
    train_z, test_z = (train_x - mean) / std, (test_x - mean) / std
    centroids = np.stack([train_z[train_y == k].mean(axis=0) for k in range(len(CLASS_NAMES))])
    predicted = np.argmin(((test_z[:, None] - centroids[None]) ** 2).sum(axis=-1), axis=1)
    per_class = [(predicted[test_y == k] == k).mean() for k in range(len(CLASS_NAMES))]
    assert (predicted == test_y).mean() > 0.8, dict(zip(CLASS_NAMES, per_class))
    assert min(per_class) >= 0.5, dict(zip(CLASS_NAMES, per_class))  # no class lost in another


@pytest.mark.slow
def test_synthetic_64_build(tmp_path):
    builder = isic.prepare("synthetic_64", data_dir=str(tmp_path))
    assert builder.info.metadata["skipped_files"] == []
    for split, counts in (("train", KAGGLE_TRAIN), ("test", KAGGLE_TEST)):
        examples = list(tfds.as_numpy(builder.as_dataset(split=split)))
        labels = np.array([example["label"] for example in examples])
        assert np.bincount(labels, minlength=9).tolist() == counts
    # Stored losslessly: the example is exactly the painter's output for its file name.
    example = next(e for e in examples if e["file_name"] == b"synthetic/test/melanoma/000005.png")
    assert CLASS_NAMES[example["label"]] == "melanoma"
    np.testing.assert_array_equal(example["image"], _images("melanoma", 6, split="test")[5])
