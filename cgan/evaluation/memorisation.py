"""Has the generator memorised training images? Distances to the nearest training image, generated vs test.

    python -m cgan.memorisation --workdir=runs/demo     # eval/memorisation_step_003000.json and two PNGs

    result = memorisation.compare(generated, generated_labels, train, test, class_names, features)
    result.report["features"]["overall"]["share_below"]        # ~ percentile / 100 for a generator that does not copy

A real test image is a picture of the same kind the generator never saw; its distance to the nearest
training image is what "new but typical" looks like. Per class, the threshold is the `percentile`-th
percentile of the test images' nearest-training distances; a generator that does not copy puts about
that share of its images below it, one that returns training images puts them all there. A class (or
the whole) is flagged when the share below exceeds FLAG_FACTOR × the expected one: a rule of thumb,
not a test. The nearest training image is searched over the whole train split, whatever its class.
Two spaces, each with its own thresholds: "features" (the evaluation classifier's 128-D features,
where small shifts stay close) and "pixels" (RMS difference, 0–255, where exact copies are close).

The images checked are those `sample.py --export_dir=OUT --per_class=N --seed=SEED` writes. Outputs:
the JSON report (with each space's 16 closest pairs), a PNG per space of those pairs in <workdir>/eval,
and TensorBoard scalars memorisation/<space>/share_below[/<class>]. These files show training images:
they are for the people who may see the training data; the web page never serves them.
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf

from cgan.core import images, options

from cgan.model import sampling

from cgan.run import run_source

from cgan.share import dataset_export
from cgan.core.errors import UserError
from cgan.evaluation.metrics import classifier as classifier_lib

PROGRAM = "memorisation"
REPORT_NAME = "memorisation"   # eval/memorisation_step_<step>.json
SUMMARY_DIR = "memorisation"
DEFAULT_PERCENTILE = 5.0
FLAG_FACTOR = 2.0          # flagged when the share below the threshold exceeds FLAG_FACTOR × percentile / 100
NUM_PAIRS = 16             # pairs in each picture
SPACES = ("features", "pixels")
_CHUNK = 512               # query vectors per distance block, bounding memory at 256×256
_TILE_MIN = 96             # pictures are enlarged (nearest neighbour) to at least this many pixels


def _check_percentile(percentile):
    if not 0 < percentile < 100:
        raise UserError(f"--percentile={percentile:g} is out of range: use a value between 0 and 100, e.g. 5")


def pixel_vectors(pictures):
    """[N, R, R, 3] uint8 -> [N, R·R·3] float32 in [0, 1]."""
    return np.asarray(pictures, np.float32).reshape(len(pictures), -1) / 255.0


def nearest(queries, references):
    """Euclidean distance from each query to its nearest reference, and which reference that is.

    Args:
        queries: [N, D] float.
        references: [M, D] float, M ≥ 1.

    Returns:
        (distances [N] float64, indices [N] int64).
    """
    references = np.asarray(references, np.float32)
    reference_norms = np.sum(references.astype(np.float64) ** 2, axis=1)                   # [M]
    distances, indices = [], []
    for start in range(0, len(queries), _CHUNK):
        block = np.asarray(queries[start:start + _CHUNK], np.float32)                       # [n, D]
        # |q - r|² = |q|² + |r|² - 2 q·r; the products in float32 (fast), the sums in float64.
        squared = (np.sum(block.astype(np.float64) ** 2, axis=1)[:, None] + reference_norms[None, :]
                   - 2.0 * (block @ references.T).astype(np.float64))                          # [n, M]
        best = squared.argmin(axis=1)
        indices.append(best)
        # The expansion loses ~1e-7 of |q|² to rounding: exact copies would sit a little above 0.
        # Measured again directly, the nearest one's distance is exact.
        distances.append(np.linalg.norm(block.astype(np.float64) - references[best].astype(np.float64), axis=1))
    if not distances:
        return np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(distances), np.concatenate(indices).astype(np.int64)


@dataclasses.dataclass
class Result:
    """What measure() found.

    Attributes:
        report: JSON-ready dict, one entry per space (see measure).
        nearest: {space: (distances [G] float64, train indices [G] int64)} for every generated image.
    """

    report: dict
    nearest: dict


def _space_report(generated_distances, generated_labels, test_distances, test_labels, class_names, percentile,
                  scale):
    """Thresholds, shares below and medians of one space; distances multiplied by `scale` for the report."""
    expected = percentile / 100.0
    per_class, below = {}, np.zeros(len(generated_distances), bool)
    judged = np.zeros(len(generated_distances), bool)
    for label, name in enumerate(class_names):
        test_class = test_distances[test_labels == label]
        members = generated_labels == label
        if not len(test_class) or not members.any():
            continue
        threshold = float(np.percentile(test_class, percentile))
        below[members] = generated_distances[members] < threshold
        judged |= members
        share = float(np.mean(below[members]))
        per_class[name] = {"share_below": share, "flagged": bool(share > FLAG_FACTOR * expected),
                           "threshold": threshold * scale, "test_images": int(len(test_class)),
                           "generated_images": int(members.sum()),
                           "median_generated": float(np.median(generated_distances[members])) * scale,
                           "median_test": float(np.median(test_class)) * scale}
    share = float(np.mean(below[judged])) if judged.any() else None
    overall = {"share_below": share, "expected_share": expected,
               "flagged": None if share is None else bool(share > FLAG_FACTOR * expected),
               "generated_images": int(judged.sum()), "test_images": int(len(test_distances)),
               "median_generated": float(np.median(generated_distances)) * scale if len(generated_distances) else None,
               "median_test": float(np.median(test_distances)) * scale}
    return {"overall": overall, "per_class": per_class}


def compare(generated, generated_labels, train, test, class_names, features, percentile=DEFAULT_PERCENTILE):
    """Nearest-training-image distances of generated and test images, and the share of copies-like images.

    Args:
        generated: [G, R, R, 3] uint8 generated images.
        generated_labels: [G] int, the class each was generated for.
        train: (images [N, R, R, 3] uint8, labels [N] int), the real train split.
        test: (images [M, R, R, 3] uint8, labels [M] int), the real test split.
        class_names: names, index i naming label i.
        features: callable, [B, R, R, 3] uint8 -> [B, D] float (e.g. Classifier.features).
        percentile: the test distances' percentile that sets each class's threshold, in (0, 100).

    Returns:
        a Result; report[space] = {"overall": {share_below, expected_share, flagged, ...},
        "per_class": {name: {share_below, flagged, threshold, test_images, generated_images,
        median_generated, median_test}}}, distances in the space's units ("pixels": RMS over 0–255).

    Raises:
        UserError: percentile outside (0, 100).
    """
    _check_percentile(percentile)
    train_images, _ = train
    test_images, test_labels = test
    generated_labels, test_labels = np.asarray(generated_labels), np.asarray(test_labels)
    dimensions = int(np.prod(train_images.shape[1:]))
    vectors = {"features": features, "pixels": pixel_vectors}
    scales = {"features": 1.0, "pixels": 255.0 / float(np.sqrt(dimensions))}  # Euclidean in [0, 1] -> RMS in 0–255
    report, found = {}, {}
    for space in SPACES:
        reference = vectors[space](train_images)                                          # [N, D]
        test_distances, _ = nearest(vectors[space](test_images), reference)               # [M]
        distances, indices = nearest(vectors[space](generated), reference)                # [G], [G]
        found[space] = (distances * scales[space], indices)
        report[space] = _space_report(distances, generated_labels, test_distances, test_labels, class_names,
                                      percentile, scales[space])
    report["percentile"] = float(percentile)
    return Result(report, found)


def closest_pairs(result, space, count=NUM_PAIRS):
    """The generated images closest to a training image: [(generated index, train index, distance)], closest first."""
    distances, indices = result.nearest[space]
    order = np.argsort(distances, kind="stable")[:count]
    return [(int(i), int(indices[i]), float(distances[i])) for i in order]


def pairs_picture(pairs, generated, generated_labels, train_images, class_names, columns=4):
    """Side-by-side pictures of generated images (left) and their nearest training image (right).

    Args:
        pairs: [(generated index, train index, distance)] from closest_pairs.
        generated: [G, R, R, 3] uint8.
        generated_labels: [G] int.
        train_images: [N, R, R, 3] uint8.
        class_names: names, index i naming label i.
        columns: pairs per row.

    Returns:
        [H, W, 3] uint8, each pair under a caption "class name  d=distance".
    """
    resolution = train_images.shape[1]
    zoom = max(1, -(-_TILE_MIN // resolution))
    side = resolution * zoom
    tile_width, tile_height, gap = 2 * side + 2, side + images.TEXT_LINE, 6
    rows = max(1, -(-len(pairs) // columns))
    canvas = np.full((rows * (tile_height + gap) - gap, columns * (tile_width + gap) - gap, 3), 255, np.uint8)
    enlarge = lambda picture: picture.repeat(zoom, axis=0).repeat(zoom, axis=1)  # [side, side, 3]
    captions = []
    for k, (generated_index, train_index, distance) in enumerate(pairs):
        left, top = (k % columns) * (tile_width + gap), (k // columns) * (tile_height + gap)
        below = top + images.TEXT_LINE                                         # the caption's line above
        canvas[below:below + side, left:left + side] = enlarge(generated[generated_index])
        canvas[below:below + side, left + side + 2:left + 2 * side + 2] = enlarge(train_images[train_index])
        label = int(generated_labels[generated_index])
        captions.append((left + 1, top + 1, f"{class_names[label]}  d={distance:.3g}"))
    return images.draw_text(canvas, captions)


@dataclasses.dataclass(frozen=True)
class Settings(options.Options):
    """Which generated images are checked and where each class's threshold lies."""
    num_per_class: int = options.num_per_class()
    seed: int = options.image_seed("the images take the seeds sample.py --export_dir --per_class gives them.")
    percentile: float = options.option(DEFAULT_PERCENTILE, "Percentile of the test images' nearest-training "
                                       "distances that sets each class's threshold.", lower=0.0, upper=100.0)
    truncation: float | None = options.truncation()
    classifier_flips: str = options.classifier_flips()


def check(source, settings, classifier_settings=None, cache_dir=None):
    """Generates settings.num_per_class images per class and measures them against the run's real data.

    Args:
        source: run_source.Source.
        settings: Settings.
        classifier_settings: the evaluation classifier's recipe; None = the default with settings' flips.
        cache_dir: the classifier's cache folder; None = next to the dataset.

    Returns:
        (Result, generated [G, R, R, 3] uint8, generated labels [G], seed ranges per class).
    """
    names = source.class_names
    seeds = dataset_export.allocate_seeds([settings.num_per_class] * len(names), settings.seed)
    generated, labels = run_source.generate_classes(source, seeds, settings.truncation)
    classifier_settings = classifier_settings or classifier_lib.ClassifierSettings(flips=settings.classifier_flips)
    classifier = classifier_lib.load_or_train(source.builder, names, source.train, source.test, classifier_settings,
                                              cache_dir)
    result = compare(generated, labels, source.train, source.test, names, classifier.features, settings.percentile)
    result.report["classifier"] = {"test_accuracy": classifier.info.get("test_accuracy"),
                                   "cache_dir": classifier.cache_dir,
                                   "features": f"'{classifier_lib.FEATURE_LAYER}' layer"}
    return result, generated, labels, seeds


def measure(source, settings, report_path, classifier_settings=None, cache_dir=None):
    """The memorisation report of a loaded run; writes the two closest-pairs pictures beside report_path.

    Args:
        source: run_source.Source.
        settings: Settings.
        report_path: the report's path; the PNGs are named after it.
        classifier_settings, cache_dir: see check.
    """
    start = time.perf_counter()
    result, generated, labels, seeds = check(source, settings, classifier_settings, cache_dir)
    names = source.class_names
    stem = os.path.splitext(report_path)[0]
    first_seeds = np.concatenate([np.asarray(s) for s in seeds])                              # [G]
    report = {"generator": source.model_path, "step": source.step, "dataset": source.dataset,
              "class_names": list(names), "num_per_class": settings.num_per_class, "truncation": settings.truncation,
              "seeds": {name: {"first": s.start, "count": len(s)} for name, s in zip(names, seeds)},
              "rule": (f"a class is flagged when more than {FLAG_FACTOR:g} x {result.report['percentile']:g} % of "
                       f"its generated images are closer to a training image than the "
                       f"{result.report['percentile']:g}th percentile of its test images' nearest-training "
                       f"distances (a rule of thumb, not a test)"),
              **result.report, "closest": {}}
    for space in SPACES:
        pairs = closest_pairs(result, space)
        picture_path = f"{stem}_closest_{space}.png"
        images.write_png(picture_path, pairs_picture(pairs, generated, labels, source.train[0], names))
        report["closest"][space] = {
            "picture": picture_path,
            "pairs": [{"class": names[labels[g]], "seed": int(first_seeds[g]), "train_index": t, "distance": d}
                      for g, t, d in pairs]}
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def write_scalars(writer, report):
    """TensorBoard scalars memorisation/<space>/share_below and .../share_below/<class>."""
    with writer.as_default(step=report["step"]):
        for space in SPACES:
            overall = report[space]["overall"]["share_below"]
            if overall is not None:
                tf.summary.scalar(f"{SUMMARY_DIR}/{space}/share_below", overall)
            for name, values in report[space]["per_class"].items():
                tf.summary.scalar(f"{SUMMARY_DIR}/{space}/share_below/{name}", values["share_below"])


def summary_lines(report):
    """A few readable lines: the share below the threshold per space, overall and for flagged classes."""
    percentile = report["percentile"]
    lines = [f"{report['generator']} (step {report['step']}) on {report['dataset']}: {report['num_per_class']} "
             f"generated images per class; share closer to a training image than the {percentile:g}th percentile "
             f"of the test images (expected ~{percentile / 100:.2f} without copying)"]
    for space in SPACES:
        overall = report[space]["overall"]
        flagged = [name for name, values in report[space]["per_class"].items() if values["flagged"]]
        per_class = ", ".join(f"{name} {values['share_below']:.2f}"
                              for name, values in report[space]["per_class"].items())
        lines.append(f"{space:<9} overall {overall['share_below']:.3f}"
                     f"{'  FLAGGED' if overall['flagged'] else ''}; flagged classes: "
                     f"{', '.join(flagged) or 'none'}; per class: {per_class}")
    lines.append(f"flag rule: {report['rule']}")
    lines.append(f"Closest pairs: {report['closest']['pixels']['picture']}, {report['closest']['features']['picture']}")
    return lines
