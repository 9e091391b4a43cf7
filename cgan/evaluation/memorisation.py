"""Has the generator memorised training images? Distances to the nearest training image, generated vs test.

    python -m cgan.memorisation --workdir=runs/demo     # eval/memorisation_step_003000.json and two PNGs
    python -m cgan.memorisation --workdir=runs/demo --num_per_class=200 --percentile=5 --json=memo.json

    result = memorisation.measure(generated, generated_labels, train, test, class_names, features)
    result.report["features"]["overall"]["share_below"]        # ~ percentile / 100 for a generator that does not copy

The measure. A real test image is a picture of the same kind that the generator never saw; its
distance to the nearest training image is what "new but typical" looks like. For each class c, the
threshold is the `percentile`-th percentile (default 5th) of the test images' nearest-training-image
distances in class c: 5 % of new real pictures of that class are closer to a training image than
this. A generated image of class c below the threshold is "closer to a training image than almost
every test image is". A generator that does not copy puts about 5 % of its images there; one that
returns training images puts them at distance 0, all below. The report gives the share below, per
class and overall, and flags a class (or the whole) when the share exceeds twice the expected one
(FLAG_FACTOR × percentile / 100): a rule of thumb, not a test; with few test images per class the
threshold itself is uncertain, so look at the pictures. The nearest training image is searched over
the whole train split, whatever its class.

Two spaces, each with its own thresholds:
- "features": Euclidean distance between the 128-D features of the evaluation classifier
  (cgan.evaluation.metrics.classifier, trained on the real train split and cached next to the dataset, the one
  `cgan.evaluation.evaluate` uses); near copies that differ by small shifts or noise stay close here;
- "pixels": root-mean-square difference of the pixel values (0–255) at the dataset's resolution;
  exact and near-exact copies are close here.

Generated images: `num_per_class` per class, from the seeds `sample.py --export_dir=OUT
--per_class=num_per_class --seed=SEED` uses (consecutive, class 0's first), so the images checked
are the ones such an export writes. Outputs: the JSON report (with, per space, the 16 closest pairs:
class, seed, the training image's position in the prepared train split, distance), a PNG per space
of those pairs (generated left, its nearest training image right, class and distance above) in
<workdir>/eval, and TensorBoard scalars memorisation/<space>/share_below[/<class>]. These
files show training images: they are for the people who may see the training data; the web page
never serves them.
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf

from cgan.core import cli, images

from cgan.model import sampling

from cgan.run import run_source

from cgan.share import dataset_export
from cgan.core.errors import UserError
from cgan.core.files import atomic_write_json
from cgan.evaluation.metrics import classifier as classifier_lib

REPORT_NAME = "memorisation"   # eval/memorisation_step_<step>.json
SUMMARY_DIR = "memorisation"
DEFAULT_NUM_PER_CLASS = 100
DEFAULT_PERCENTILE = 5.0
FLAG_FACTOR = 2.0          # flagged when the share below the threshold exceeds FLAG_FACTOR × percentile / 100
NUM_PAIRS = 16             # pairs in each picture
SPACES = ("features", "pixels")
_CHUNK = 512               # query vectors per distance block, bounding memory at 256×256
_TILE_MIN = 96             # pictures are enlarged (nearest neighbour) to at least this many pixels
_CAPTION = 14              # pixels of caption above each pair


def _check_percentile(percentile):
    if not 0 < percentile < 100:
        raise UserError(f"--percentile={percentile:g} is out of range: use a value between 0 and 100, e.g. 5")


def _check_num_per_class(num_per_class):
    if num_per_class < 1:
        raise UserError(f"--num_per_class={num_per_class} must be positive: e.g. --num_per_class=100")


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


def measure(generated, generated_labels, train, test, class_names, features, percentile=DEFAULT_PERCENTILE):
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
    from PIL import Image, ImageDraw  # Pillow comes with TensorBoard

    resolution = train_images.shape[1]
    zoom = max(1, -(-_TILE_MIN // resolution))
    side = resolution * zoom
    tile_width, tile_height, gap = 2 * side + 2, side + _CAPTION, 6
    rows = max(1, -(-len(pairs) // columns))
    canvas = Image.new("RGB", (columns * (tile_width + gap) - gap, rows * (tile_height + gap) - gap), "white")
    draw = ImageDraw.Draw(canvas)
    enlarge = lambda picture: Image.fromarray(picture.repeat(zoom, axis=0).repeat(zoom, axis=1))  # [side, side, 3]
    for k, (generated_index, train_index, distance) in enumerate(pairs):
        left, top = (k % columns) * (tile_width + gap), (k // columns) * (tile_height + gap)
        canvas.paste(enlarge(generated[generated_index]), (left, top + _CAPTION))
        canvas.paste(enlarge(train_images[train_index]), (left + side + 2, top + _CAPTION))
        label = int(generated_labels[generated_index])
        draw.text((left + 1, top + 1), f"{class_names[label]}  d={distance:.3g}", fill="black")
    return np.asarray(canvas)


def check(source, num_per_class=DEFAULT_NUM_PER_CLASS, seed=0, percentile=DEFAULT_PERCENTILE, truncation=None,
          classifier_settings=classifier_lib.ClassifierSettings(), cache_dir=None):
    """Generates num_per_class images per class and measures them against the run's real data.

    Args:
        source: run_source.Source.
        num_per_class: generated images per class.
        seed: first seed (as sample.py --export_dir --per_class --seed).
        percentile: see measure.
        truncation: None, or the truncation threshold.
        classifier_settings: the evaluation classifier's settings (cgan.evaluation.metrics.classifier).
        cache_dir: the classifier's cache folder; None = next to the dataset.

    Returns:
        (Result, generated [G, R, R, 3] uint8, generated labels [G], seed ranges per class).

    Raises:
        UserError: num_per_class < 1, bad percentile or truncation.
    """
    _check_num_per_class(num_per_class)
    truncation = sampling.check_truncation(truncation)
    names = source.class_names
    seeds = dataset_export.allocate_seeds([num_per_class] * len(names), seed)
    generated, labels = run_source.generate_classes(source, seeds, truncation)
    classifier = classifier_lib.load_or_train(source.builder, names, source.train, source.test, classifier_settings,
                                              cache_dir)
    result = measure(generated, labels, source.train, source.test, names, classifier.features, percentile)
    result.report["classifier"] = {"test_accuracy": classifier.info.get("test_accuracy"),
                                   "cache_dir": classifier.cache_dir,
                                   "features": f"'{classifier_lib.FEATURE_LAYER}' layer"}
    return result, generated, labels, seeds


def measure_run(workdir, num_per_class=DEFAULT_NUM_PER_CLASS, seed=0, percentile=DEFAULT_PERCENTILE,
                truncation=None, json_path=None, classifier_settings=classifier_lib.ClassifierSettings(),
                cache_dir=None):
    """Checks a run's exported generator; writes the report, the pair pictures and TensorBoard scalars.

    Args:
        workdir: run directory of trainer.py.
        num_per_class, seed, percentile, truncation, classifier_settings, cache_dir: see check.
        json_path: report path; None = <workdir>/eval/memorisation_step_<step>.json (the PNGs go beside
            it, named after it).

    Returns:
        (report dict, path of the JSON written).

    Raises:
        UserError: missing workdir or model, dataset that cannot be found, bad values.
    """
    _check_num_per_class(num_per_class)  # before anything is loaded
    _check_percentile(percentile)
    sampling.check_truncation(truncation)
    source = run_source.load_workdir(workdir)
    start = time.perf_counter()
    result, generated, labels, seeds = check(source, num_per_class, seed, percentile, truncation,
                                             classifier_settings, cache_dir)
    names = source.class_names
    json_path = run_source.report_path(workdir, REPORT_NAME, source.step, json_path)
    stem = os.path.splitext(json_path)[0]
    first_seeds = np.concatenate([np.asarray(s) for s in seeds])                              # [G]
    report = {"generator": source.model_path, "step": source.step, "dataset": source.dataset,
              "class_names": list(names), "num_per_class": num_per_class, "truncation": truncation,
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
    atomic_write_json(json_path, report)
    write_summaries(report, run_source.eval_dir(workdir))
    return report, json_path


def write_summaries(report, log_dir):
    """TensorBoard scalars memorisation/<space>/share_below and .../share_below/<class>."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=report["step"]):
        for space in SPACES:
            overall = report[space]["overall"]["share_below"]
            if overall is not None:
                tf.summary.scalar(f"{SUMMARY_DIR}/{space}/share_below", overall)
            for name, values in report[space]["per_class"].items():
                tf.summary.scalar(f"{SUMMARY_DIR}/{space}/share_below/{name}", values["share_below"])
    writer.flush()


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
    return lines


def _define_flags():
    from absl import flags
    flags.DEFINE_integer("num_per_class", DEFAULT_NUM_PER_CLASS, "Generated images per class.")
    flags.DEFINE_integer("seed", 0, "First seed (as sample.py --export_dir --per_class --seed).")
    flags.DEFINE_float("percentile", DEFAULT_PERCENTILE,
                       "Percentile of the test images' nearest-training distances that sets each class's "
                       "threshold (0 to 100).")
    flags.DEFINE_float("truncation", None, "Truncation threshold of the generated images, as in sample.py.")
    classifier_lib.define_flips_flag()


def _main(flag_values):
    report, path = measure_run(flag_values.workdir, flag_values.num_per_class, flag_values.seed,
                               flag_values.percentile, flag_values.truncation, flag_values.json,
                               classifier_lib.ClassifierSettings(flips=flag_values.classifier_flips))
    return summary_lines(report) + [f"Report: {path}  Closest pairs: {report['closest']['pixels']['picture']}, "
                                    f"{report['closest']['features']['picture']}"]


def main():
    """The `python -m cgan.memorisation` command line."""
    cli.run("memorisation", REPORT_NAME, _define_flags, _main)
