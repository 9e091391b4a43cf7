"""cgan.evaluation.report_card: a block per class, real above generated, one noise vector per column in every class."""

import numpy as np
import pytest
import tensorflow as tf

from cgan.core import images
from cgan.evaluation import report_card
from cgan.model import sampling
from conftest import LATENT_DIM, find_picture, tiny_generator

CLASSES = ("alpha", "beta cell lesion", "gamma")
REAL_COUNTS = (8, 3, 8)            # beta has fewer training images than a row holds
GENERATED = report_card.COLUMNS * report_card.GENERATED_ROWS
METRICS = {"classifier_coverage/alpha": 0.5, "classifier_coverage_floor/alpha": 0.75,
           "structure_diversity_ratio/alpha": 0.9, "assigned_elsewhere/alpha": 0.125, "gan_test_ratio": 0.8}


def random_pictures(seed, count, resolution=64):
    return np.random.default_rng(seed).integers(0, 256, (count, resolution, resolution, 3), dtype=np.uint8)


def label_blind_generator(inputs, training=False):
    """Called as sampling.generate calls a generator; its pictures depend on z alone."""
    z, _ = inputs                                                                         # [B, 8]
    return tf.tanh(tf.reshape(tf.tile(z, [1, 64 * 64 * 3 // LATENT_DIM]), [-1, 64, 64, 3]))  # [B, 64, 64, 3]


@pytest.fixture(scope="module")
def pictures():
    real = [random_pictures(label, count) for label, count in enumerate(REAL_COUNTS)]
    generated = [random_pictures(10 + label, GENERATED) for label in range(len(CLASSES))]
    return real, generated


def test_one_block_per_class_in_label_order_real_row_above_the_generated_rows(pictures):
    real, generated = pictures
    card = report_card.draw(real, generated, CLASSES, METRICS, ["a heading"])
    assert card.dtype == np.uint8 and card.ndim == 3 and card.shape[2] == 3
    step = 64 + 2                                                       # a tile and the grid's padding
    tops, lefts = [], []
    for label in range(len(CLASSES)):
        found = [find_picture(card, picture) for picture in real[label]]
        assert all(len(places) == 1 for places in found), label        # each real picture once
        (top, left), = found[0]
        assert [places[0] for places in found] == [(top, left + i * step) for i in range(REAL_COUNTS[label])]
        generated_top = None
        for j, picture in enumerate(generated[label]):
            (y, x), = find_picture(card, picture)
            generated_top = generated_top or y
            row, column = divmod(j, report_card.COLUMNS)
            assert (y, x) == (generated_top + row * step, left + column * step)
        assert generated_top > top + 64                                # a gap between real and generated
        tops.append(top)
        lefts.append(left)
    assert tops == sorted(tops) and len(set(lefts)) == 1
    block = tops[1] - tops[0]
    assert tops[2] - tops[1] == block and card.shape[0] - tops[2] < block + 64  # equal blocks, the last at the end
    assert tops[0] > 2 * images.TEXT_LINE                               # below the header's lines
    # Beta's row ends after 3 pictures: the rest of it is background.
    assert (card[tops[1]:tops[1] + 64, lefts[1] + 3 * step:lefts[1] + 8 * step - 2] == 255).all()
    # Text left of the pictures in every block: the class's name and figures.
    for top in tops:
        assert (card[top:top + 4 * images.TEXT_LINE, :lefts[0]] < 128).any()


def test_generated_rows_use_the_same_noise_in_every_class():
    generated = report_card.generate(label_blind_generator, len(CLASSES), LATENT_DIM, seed=5)
    assert generated.shape == (len(CLASSES), GENERATED, 64, 64, 3)
    np.testing.assert_array_equal(generated[0], generated[1])
    np.testing.assert_array_equal(generated[0], generated[2])
    assert len({picture.tobytes() for picture in generated[0]}) == GENERATED   # the columns differ
    real = [random_pictures(label, count) for label, count in enumerate(REAL_COUNTS)]
    card = report_card.draw(real, generated, CLASSES, METRICS)
    (top_alpha, left), = find_picture(card, real[0][0])
    (top_beta, _), = find_picture(card, real[1][0])
    (top_gamma, _), = find_picture(card, real[2][0])
    first = find_picture(card, generated[0][0])
    assert [x for _, x in first] == [left] * 3                          # the same picture in each block
    rows = [card[y:y + 2 * 66 - 2, left:left + 8 * 66 - 2] for y, _ in first]
    np.testing.assert_array_equal(rows[0], rows[1])
    np.testing.assert_array_equal(rows[0], rows[2])
    assert top_alpha < first[0][0] < top_beta < first[1][0] < top_gamma < first[2][0]

    # With a conditional generator, class c's image j is sampling.generate's for class c and seed 5 + j.
    generator = tiny_generator(num_classes=3)
    conditional = report_card.generate(generator, 3, LATENT_DIM, seed=5)
    np.testing.assert_array_equal(conditional[2][7], sampling.generate(generator, 2, [12], LATENT_DIM)[0])
    assert not np.array_equal(conditional[0], conditional[1])


def test_missing_figures_show_a_dash(pictures):
    real, generated = pictures
    assert report_card._class_lines({}, "gamma") == ["gamma", f"coverage {report_card.MISSING}",
                                                     f"diversity ratio {report_card.MISSING}",
                                                     f"assigned elsewhere {report_card.MISSING}"]
    assert report_card._class_lines(METRICS, "alpha") == ["alpha", "coverage 0.50 (floor 0.75)",
                                                          "diversity ratio 0.90", "assigned elsewhere 0.12"]
    assert "GAN-test ratio 0.80" in report_card.overall_line(METRICS)
    assert report_card.overall_line({"gan_test_ratio": float("nan")}).endswith(f"ratio {report_card.MISSING}")
    empty = report_card.draw(real, generated, CLASSES, {})
    full = report_card.draw(real, generated, CLASSES, METRICS)
    assert empty.shape[0] == full.shape[0] and (empty < 128).any()


def test_pictures_larger_than_a_tile_are_shrunk_to_it():
    small = random_pictures(3, 2)                                            # [2, 64, 64, 3]
    large = small.repeat(2, axis=1).repeat(2, axis=2)                        # [2, 128, 128, 3], 2×2 blocks
    generated = random_pictures(4, GENERATED, 32).repeat(4, axis=1).repeat(4, axis=2)   # [16, 128, 128, 3]
    card = report_card.draw([large], [generated], ("only",), {})
    (top, left), = find_picture(card, small[0])
    assert find_picture(card, small[1]) == [(top, left + 66)]
    assert len(find_picture(card, generated[0][::2, ::2])) == 1


def test_the_card_sits_beside_its_report():
    assert report_card.card_path("runs/demo/eval/report_step_005000.json") == "runs/demo/eval/report_step_005000.png"
    assert report_card.card_path("out/my.report.json") == "out/my.report.png"
