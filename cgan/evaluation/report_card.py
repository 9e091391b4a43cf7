"""The report card of an evaluation: each class's real and generated images beside its figures, one PNG.

    python -m cgan.evaluate --workdir=runs/demo     # eval/report_step_003000.json and report_step_003000.png

    real = report_card.first_of_each_class(source.train, len(class_names))        # per class [≤ 8, R, R, 3]
    generated = report_card.generate(source.generator, len(class_names), latent_dim, seed=0)  # [K, 16, R, R, 3]
    card = report_card.draw(real, generated, class_names, report["metrics"], ["isic_skin_cancer/real_64  step 3000"])
    report_card.write("runs/demo/eval/report_step_003000.png", source, report, seed=0)   # all of the above

Top to bottom: the header (the given lines, then the overall figures: coverage mean, colour-blind
diversity ratio mean, GAN-test ratio), then one block per class in label order. A block is a text
column (the class name, its coverage, structure diversity ratio and share assigned elsewhere; MISSING
for a figure the report lacks), the rows' names, and the pictures: the class's first COLUMNS real training
images in split order, a gap with a grey rule, then GENERATED_ROWS rows of generated images. Generated
image j (row by row) of every class comes from seed `seed + j`, so a column keeps its noise across
classes: within a block the columns show the class's variety, down a column the class's effect.
Pictures larger than TILE pixels are shrunk to TILE (area average). The card shows training images:
it is for the people who may see the training data; the web page never serves it.
"""

import math
import os

import numpy as np
import tensorflow as tf

from cgan.core import images
from cgan.model import sampling

COLUMNS = 8             # pictures per row
GENERATED_ROWS = 2      # rows of generated pictures per class
TILE = 64               # pictures are shown at most this many pixels wide
_MARGIN = 6             # pixels around the card and between its columns
_REAL_GAP = 8           # pixels between a class's real row and its generated rows, a rule in the middle
_BLOCK_GAP = 14         # pixels between two classes' blocks, a rule in the middle
_BACKGROUND, _RULE, _REAL_RULE = 255, 80, 190   # grey levels
MISSING = "-"           # a figure the report lacks (Pillow's default font has no en dash)


def card_path(report_path):
    """The card beside a report: the same path with .png for its extension."""
    return os.path.splitext(report_path)[0] + ".png"


def first_of_each_class(split, num_classes, count=COLUMNS):
    """The first `count` images of each class, in split order.

    Args:
        split: (images [N, R, R, 3] uint8, labels [N] int).
        num_classes: K.
        count: images per class at most.

    Returns:
        list over classes of [min(count, N_c), R, R, 3] uint8.
    """
    pictures, labels = split
    return [pictures[np.flatnonzero(np.asarray(labels) == label)[:count]] for label in range(num_classes)]


def generate(generator, num_classes, latent_dim, seed, count=COLUMNS * GENERATED_ROWS):
    """The same `count` noise vectors (seeds seed … seed + count − 1) rendered as every class.

    Returns:
        [num_classes, count, R, R, 3] uint8.
    """
    return np.stack([sampling.generate(generator, label, range(seed, seed + count), latent_dim)
                     for label in range(num_classes)])


def _tiles(pictures):
    """[N, R, R, 3] uint8 -> [N, T, T, 3] uint8, T = min(R, TILE)."""
    pictures = np.asarray(pictures, np.uint8)
    if pictures.shape[1] <= TILE or not len(pictures):
        return pictures
    shrunk = tf.image.resize(pictures, [TILE, TILE], method="area").numpy()             # [N, TILE, TILE, 3]
    return np.clip(np.rint(shrunk), 0, 255).astype(np.uint8)


def _figure(metrics, name):
    value = metrics.get(name)
    return MISSING if value is None or not math.isfinite(value) else f"{value:.2f}"


def _class_lines(metrics, name):
    coverage = f"coverage {_figure(metrics, f'classifier_coverage/{name}')}"
    if _figure(metrics, f"classifier_coverage_floor/{name}") != MISSING:
        coverage += f" (floor {_figure(metrics, f'classifier_coverage_floor/{name}')})"
    return [name, coverage, f"diversity ratio {_figure(metrics, f'structure_diversity_ratio/{name}')}",
            f"assigned elsewhere {_figure(metrics, f'assigned_elsewhere/{name}')}"]


def overall_line(metrics):
    """The header's line of figures over all classes."""
    return (f"coverage mean {_figure(metrics, 'classifier_coverage_class_mean')} "
            f"(floor {_figure(metrics, 'classifier_coverage_floor_class_mean')})   colour-blind diversity ratio "
            f"mean {_figure(metrics, 'structure_diversity_ratio_class_mean')}   GAN-test ratio "
            f"{_figure(metrics, 'gan_test_ratio')}")


def draw(real, generated, class_names, metrics, heading=()):
    """The report card as one picture (module docstring).

    Args:
        real: list over classes of [n_c, R, R, 3] uint8, n_c ≤ COLUMNS: the real row of each block.
        generated: list over classes of [COLUMNS · rows, R, R, 3] uint8, image j of every class from the
            same z (generate).
        class_names: names, index i naming label i.
        metrics: a report's "metrics" ({name: float or None}); figures not in it show as MISSING.
        heading: lines of text above the overall figures.

    Returns:
        [H, W, 3] uint8: H = header + K blocks of (T + _REAL_GAP + rows · (T + 2) − 2) pixels with
        _BLOCK_GAP between them, T = min(R, TILE).
    """
    if not len(real) == len(generated) == len(class_names):
        raise ValueError(f"{len(real)} real and {len(generated)} generated sets for {len(class_names)} classes")
    real = [_tiles(pictures) for pictures in real]                                  # per class [n_c, T, T, 3]
    generated = [_tiles(pictures) for pictures in generated]                        # per class [COLUMNS·rows, T, T, 3]
    tile = generated[0].shape[1]
    generated_grids = [images.image_grid(pictures, rows=len(pictures) // COLUMNS)
                       for pictures in generated]                                   # per class [rows·(T+2)-2, W, 3]
    header = [*heading, overall_line(metrics)]
    texts = [_class_lines(metrics, name) for name in class_names]
    text_width = max(images.text_width(line) for lines in texts for line in lines)
    label_width = max(images.text_width(label) for label in ("real", "generated"))
    label_left = _MARGIN + text_width + 2 * _MARGIN
    pictures_left = label_left + label_width + _MARGIN
    pictures_width = COLUMNS * (tile + 2) - 2
    block_heights = [tile + _REAL_GAP + grid.shape[0] for grid in generated_grids]
    header_height = _MARGIN + len(header) * images.TEXT_LINE + _MARGIN
    height = header_height + sum(block_heights) + _BLOCK_GAP * (len(class_names) - 1) + _MARGIN
    width = max(pictures_left + pictures_width, max(images.text_width(line) for line in header) + _MARGIN) + _MARGIN
    canvas = np.full((height, width, 3), _BACKGROUND, np.uint8)                     # [H, W, 3]
    captions = [(_MARGIN, _MARGIN + i * images.TEXT_LINE, line) for i, line in enumerate(header)]
    top = header_height
    for label, (pictures, grid, lines) in enumerate(zip(real, generated_grids, texts)):
        if label:
            canvas[top - _BLOCK_GAP // 2, _MARGIN:width - _MARGIN] = _RULE
        if len(pictures):
            row = images.image_grid(pictures, rows=1)                               # [T, n_c·(T+2)-2, 3]
            canvas[top:top + tile, pictures_left:pictures_left + row.shape[1]] = row
        canvas[top + tile + _REAL_GAP // 2 - 1:top + tile + _REAL_GAP // 2 + 1,
               pictures_left:pictures_left + pictures_width] = _REAL_RULE
        below = top + tile + _REAL_GAP                                              # the generated rows' top
        canvas[below:below + grid.shape[0], pictures_left:pictures_left + grid.shape[1]] = grid
        captions += [(_MARGIN, top + i * images.TEXT_LINE, line) for i, line in enumerate(lines)]
        captions += [(label_left, top + (tile - images.TEXT_LINE) // 2, "real"),
                     (label_left, below + (grid.shape[0] - images.TEXT_LINE) // 2, "generated")]
        top += block_heights[label] + _BLOCK_GAP
    return images.draw_text(canvas, captions)


def write(path, source, report, seed):
    """Draws the card of an evaluation report of a run and writes it as PNG (atomically).

    Args:
        path: the .png file (card_path of the report's).
        source: the run_source.Source the report measured.
        report: the evaluation report (cgan.evaluation.evaluate.Evaluator.report).
        seed: generated image j of every class comes from seed + j.

    Returns:
        path.
    """
    names = source.class_names
    heading = [f"{report['dataset']}  step {report['step']}",
               f"real: a class's first {COLUMNS} training images;  generated: image j (row by row) from seed "
               f"{seed} + j, the same noise in every class"]
    card = draw(first_of_each_class(source.train, len(names)),
                generate(source.generator, len(names), source.latent_dim, seed), names, report["metrics"], heading)
    images.write_png(path, card)
    return path
