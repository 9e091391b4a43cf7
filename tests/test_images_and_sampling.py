import numpy as np
import pytest
import tensorflow as tf

from cgan.core import images

from cgan.model import networks, sampling
from cgan.core.errors import UserError

CLASSES = ("actinic_keratosis", "basal_cell_carcinoma", "melanoma")


def test_to_uint8_rounds_and_clips():
    np.testing.assert_array_equal(images.to_uint8(np.array([-1.5, -1.0, 0.0, 1.0, 2.0])),
                                  [0, 0, 128, 255, 255])


def test_image_grid_layout():
    tiles = np.stack([np.full((2, 2, 3), i, np.uint8) for i in range(6)])
    grid = images.image_grid(tiles, rows=2, padding=1)
    assert grid.shape == (5, 8, 3)
    assert grid[0, 0, 0] == 0 and grid[0, 3, 0] == 1 and grid[3, 0, 0] == 3 and grid[4, 7, 0] == 5
    assert grid[2, 0, 0] == 0 and grid[0, 2, 0] == 0  # padding


def test_image_grid_without_rows_is_the_most_square_layout_padded_with_black():
    tiles = np.full((5, 2, 2, 3), 200, np.uint8)
    grid = images.image_grid(tiles, padding=1)                   # 3 columns, 2 rows, the last tile black
    assert grid.shape == (2 * 3 - 1, 3 * 3 - 1, 3)
    assert grid[3:5, 6:8].max() == 0 and grid[3:5, 3:5].min() == 200


def test_write_png_round_trip(tmp_path):
    picture = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "x.png"
    images.write_png(str(path), picture)
    np.testing.assert_array_equal(tf.io.decode_png(path.read_bytes()).numpy(), picture)
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]  # no temporary left behind


@pytest.mark.parametrize("text,expected", [("2", 2), ("melanoma", 2), ("Basal Cell Carcinoma", 1),
                                           ("basal-cell_carcinoma", 1), (" 0 ", 0)])
def test_resolve_label(text, expected):
    assert sampling.resolve_label(text, CLASSES) == expected


@pytest.mark.parametrize("text,message", [("3", "out of range"), ("-1", "out of range"),
                                          ("nevus", "not a class")])
def test_resolve_label_errors_list_the_choices(text, message):
    with pytest.raises(UserError, match=message) as info:
        sampling.resolve_label(text, CLASSES)
    assert "2=melanoma" in str(info.value)


def test_each_image_depends_on_its_own_seed_only():
    generator = networks.build_generator(64, latent_dim=8, num_classes=3)
    batch = sampling.generate(generator, 1, [5, 6, 7], latent_dim=8)
    alone = sampling.generate(generator, 1, [6], latent_dim=8)
    assert batch.shape == (3, 64, 64, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[1], alone[0])
    assert not np.array_equal(batch[0], batch[1])


def test_write_samples_names_files(tmp_path):
    generator = networks.build_generator(64, latent_dim=8, num_classes=3)
    info = {"class_names": list(CLASSES), "latent_dim": 8}
    paths = sampling.write_samples(generator, info, 2, range(3, 8), str(tmp_path))
    names = [p.split("/")[-1] for p in paths]
    assert names == [f"class02_melanoma_seed{s:04d}.png" for s in range(3, 8)] + \
        ["class02_melanoma_seeds0003-0007.png"]
    grid = tf.io.decode_png((tmp_path / names[-1]).read_bytes()).numpy()
    assert grid.shape == (2 * 64 + 2, 3 * 64 + 4, 3)  # 5 images in a 2×3 grid with 2-pixel padding


@pytest.mark.parametrize("truncation", [0.05, 0.5, 2.0])
def test_truncated_latent_is_within_bounds(truncation):
    z = sampling.latent_for_seeds(range(20), 16, truncation).numpy()
    assert z.shape == (20, 16) and z.dtype == np.float32
    assert np.abs(z).max() <= truncation


def test_truncation_redraws_only_the_components_outside():
    plain = sampling.latent_for_seeds(range(20), 16).numpy()
    truncated = sampling.latent_for_seeds(range(20), 16, 0.5).numpy()
    inside = np.abs(plain) <= 0.5
    assert 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(truncated[inside], plain[inside])
    assert not np.any(truncated[~inside] == plain[~inside])


def test_truncated_latent_depends_on_its_own_seed_only():
    batch = sampling.latent_for_seeds([5, 6, 7], 32, 0.3).numpy()
    np.testing.assert_array_equal(batch[1], sampling.latent_for_seeds([6], 32, 0.3).numpy()[0])
    np.testing.assert_array_equal(batch, sampling.latent_for_seeds([5, 6, 7], 32, 0.3).numpy())
    assert not np.array_equal(batch[0], batch[1])


@pytest.mark.parametrize("truncation", [None, sampling.TRUNCATION_MAX, 50.0])
def test_no_truncation_is_the_plain_normal_latent(truncation):
    z = sampling.latent_for_seeds([0, 9], 8, truncation).numpy()
    for row, seed in zip(z, [0, 9]):
        np.testing.assert_array_equal(row, tf.random.stateless_normal([8], seed=[seed, 0]).numpy())


@pytest.mark.parametrize("value", [0.0, 0.01, -1.0, 10.5, float("nan"), float("inf")])
def test_check_truncation_rejects_out_of_range(value):
    with pytest.raises(UserError, match=r"--truncation=.* is out of range: use 0.05 to 10"):
        sampling.check_truncation(value)


def test_check_truncation_accepts_the_range_and_none():
    assert sampling.check_truncation(None) is None
    assert sampling.check_truncation("0.7") == 0.7
    assert sampling.check_truncation(0.05) == 0.05 and sampling.check_truncation(10) == 10.0


def test_truncated_samples_are_named_apart(tmp_path):
    generator = networks.build_generator(64, latent_dim=8, num_classes=3)
    info = {"class_names": list(CLASSES), "latent_dim": 8}
    paths = sampling.write_samples(generator, info, 0, [4, 5], str(tmp_path), truncation=0.7)
    assert [p.split("/")[-1] for p in paths] == [
        "class00_actinic_keratosis_seed0004_trunc0.70.png", "class00_actinic_keratosis_seed0005_trunc0.70.png",
        "class00_actinic_keratosis_seeds0004-0005_trunc0.70.png"]
    expected = sampling.generate(generator, 0, [5], 8, truncation=0.7)[0]
    np.testing.assert_array_equal(tf.io.decode_png((tmp_path / paths[1].split("/")[-1]).read_bytes()).numpy(),
                                  expected)
    assert not np.array_equal(expected, sampling.generate(generator, 0, [5], 8)[0])
