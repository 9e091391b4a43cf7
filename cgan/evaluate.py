"""Evaluates a generator against the real images: classifier metrics offline, FID/KID with Inception.

    python -m cgan.evaluate --workdir=runs/demo          # report: runs/demo/eval/report_step_003000.json
    python -m cgan.evaluate --workdir=runs/demo --num_per_class=200 --seed=0 \\
        --inception_weights=~/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 --json=report.json

    # In a training loop (set up once, then every few thousand steps):
    evaluator = evaluate.Evaluator(builder, class_names, resolution=64, num_per_class=100, seed=0,
                                   inception_weights="imagenet", train_cas=False)
    metrics = evaluator.evaluate(generator, latent_dim)  # {"gan_test": 0.93, "classifier_fd": 3.1, ...}
    evaluate.write_scalars(writer, metrics, step)         # TensorBoard: eval/gan_test, eval/fid/melanoma, ...

What is generated: image i of class c comes from seed `seed + c * SEED_STRIDE + i`
(`sampling.generate(generator, c, [that seed])`, the image `sample.py --label=c
--seed=<seed + c * SEED_STRIDE>` writes as its image i), so no noise vector serves two classes, and
the same seeds are used at every evaluation, so numbers compare across steps. Each class gets as
many images as its largest use needs (generated_counts); every metric takes the FIRST images of a
class:
- GAN-test: images 0 … n−1 of every class (n = num_per_class).
- CAS: images 0 … N_c−1 of class c, N_c being its count in the real train split, so the generated
  training set has the real one's class counts.
- distances: images 0 … |H1 ∩ c|−1 of class c (cgan.metrics.cross_fit: sized and class-mixed like
  the real set H1 their floor is measured with).

Metrics (keys of the returned dict; "/<class name>" for per-class values; cgan.metrics.cas and
cgan.metrics.cross_fit define them):
- classifier_test_accuracy: the classifier trained on the whole real train split (cached next to
  the dataset), on the real test split.
- gan_test: that classifier's accuracy on generated images (GAN-test, Shmelkov et al. 2018); overall
  = mean over classes. gan_test_ratio = gan_test / classifier_test_accuracy.
- cas (with train_cas): a classifier of the same architecture and recipe trained on generated images
  only, scored on the real test split (CAS, Ravuri & Vinyals 2019). cas_ratio = cas /
  classifier_test_accuracy.
- classifier_fd, classifier_kid, classifier_precision, classifier_recall: Fréchet distance, KID and
  k-NN precision/recall (k = 3) in the 128-D features of two cross-fitted classifiers, each against
  the half of the real train split it never saw; each with `_floor`, the same metric between two
  disjoint real sets at the same sizes against the same reference, and classifier_fd_ratio =
  classifier_fd / classifier_fd_floor.
- Per-class summaries (recall near 0 = every image of a class looks alike): classifier_recall_class_mean,
  classifier_recall_floor_class_mean, classifier_recall_class_min, classifier_fd_ratio_class_max.
- fid, kid, inception_precision, inception_recall (each with `_floor`, and fid_ratio): the same on
  Inception-v3 pool features (cgan.metrics.inception), when its weights are available; otherwise absent,
  and the report says why. These use Keras' ImageNet weights and resize: compare them with this tool's
  reports only, never with published FIDs.
FD values depend on the sample counts (biased up for small sets), hence the floors at equal counts.
A metric needing more samples than a set has (precision/recall needs 4) is left out for that set.
The report also names the worst class: the lowest classifier_recall and the highest classifier_fd_ratio.

Costs: the real-trained classifier and the two half classifiers are trained once per dataset and
cached; CAS trains one classifier per evaluation (train_cas=False skips it, e.g. during training).
"""

import collections
import io
import json
import math
import os
import sys
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from cgan import datasets, export, input_pipeline, sampling
from cgan.config import TrainConfig
from cgan.errors import UserError
from cgan.files import atomic_write_bytes
from cgan.metrics import cas as cas_lib
from cgan.metrics import classifier as classifier_lib
from cgan.metrics import cross_fit, inception, kid, precision_recall

DEFAULT_NUM_PER_CLASS = 100
SEED_STRIDE = 1_000_000   # seeds of class c start at seed + c * SEED_STRIDE: no class reuses another's
SEED_MAX = 2**31 - 1      # the largest seed sample.py and the web API take
EVAL_DIR = "eval"
INCEPTION_CACHE_DIR = "inception_features"
FID_NOTE = ("FID/KID here use Keras' ImageNet InceptionV3 weights and a bilinear resize to 299x299, not the "
            "TF1 Inception graph and resize of the reference FID code: they compare with other reports of "
            "this tool only, never with published FIDs")
# Metric names per feature space: the Inception ones follow the literature; the classifier's carry its prefix.
_SPACE_NAMES = {
    "classifier": {"fd": "classifier_fd", "kid": "classifier_kid", "precision": "classifier_precision",
                   "recall": "classifier_recall"},
    "inception": {"fd": "fid", "kid": "kid", "precision": "inception_precision", "recall": "inception_recall"},
}


def image_seeds(seed, label, count):
    """The seeds of images 0 … count−1 of one class: seed + label · SEED_STRIDE + i."""
    first = seed + label * SEED_STRIDE
    return range(first, first + count)


class Evaluator:
    """Holds what does not change between evaluations: real images, their features, the classifiers.

    Build it once (it may train the classifiers and compute Inception features of the real images),
    outside any distribution strategy scope and on the chief worker only, then call `evaluate` as
    often as needed: the same seeds every time, so values compare across steps.
    """

    def __init__(self, builder, class_names, resolution, num_per_class=DEFAULT_NUM_PER_CLASS, seed=0,
                 inception_weights=inception.IMAGENET, classifier_settings=classifier_lib.ClassifierSettings(),
                 cache_dir=None, train_cas=True, num_splits=cross_fit.NUM_SPLITS):
        """
        Args:
            builder: the prepared TFDS builder of the run's dataset (cgan.datasets.prepare).
            class_names: label names of the generator, index i naming label i.
            resolution: the generator's image size in pixels.
            num_per_class: generated images per class for GAN-test (n); ≥ 2.
            seed: first generator seed; image i of class c uses seed + c · SEED_STRIDE + i.
            inception_weights: "imagenet", "none", or the path of a weights file (cgan.metrics.inception).
            classifier_settings: ClassifierSettings of the real-trained classifier, of the CAS classifier
                (the same recipe) and, with twice the epochs, of the half classifiers.
            cache_dir: where the classifiers and the real images' Inception features are cached
                (subfolders classifier/, classifier_half0/, classifier_half1/, inception_features/);
                None = builder.data_dir.
            train_cas: whether every evaluation trains the CAS classifier (one classifier training).
            num_splits: H1/H2 splits of each held-out half (cgan.metrics.cross_fit).

        Raises:
            UserError: bad sample count or seed, a dataset that does not match the generator, a missing
                weights file.
        """
        if num_per_class < 2:
            raise UserError(f"num_per_class={num_per_class} is too small: the metrics need 2 or more "
                            f"images per class; use 100 or more for stable numbers")
        setup_start = time.perf_counter()
        dataset_classes = datasets.class_names(builder)
        if tuple(class_names) != tuple(dataset_classes):
            raise UserError(f"the generator's classes ({', '.join(class_names)}) are not those of "
                            f"{builder.info.full_name} ({', '.join(dataset_classes)}): evaluate a run on "
                            f"the dataset it was trained on")
        self.builder = builder
        self.cache_dir = cache_dir or builder.data_dir
        self.class_names = tuple(class_names)
        self.num_per_class = int(num_per_class)
        self.seed = int(seed)
        self.train_cas = bool(train_cas)
        self.classifier_settings = classifier_settings
        train_images, self.train_labels = input_pipeline.load_split(builder, "train")  # [N, R, R, 3], [N]
        self.test = input_pipeline.load_split(builder, "test")
        if train_images.shape[1] != resolution:
            raise UserError(f"the generator makes {resolution}x{resolution} images but "
                            f"{builder.info.full_name} holds {train_images.shape[1]}x{train_images.shape[2]}: "
                            f"evaluate on the dataset config the run was trained on")
        self.resolution = int(resolution)
        num_classes = len(self.class_names)
        self.train_counts = np.bincount(self.train_labels, minlength=num_classes)          # [K]

        self.folds = cross_fit.plan_folds(self.train_labels, seed=self.seed, num_splits=num_splits)
        self.distance_counts = cross_fit.generated_counts(self.folds, self.train_labels, num_classes)  # [K]
        needed = [np.full(num_classes, self.num_per_class), self.distance_counts]
        if self.train_cas:
            needed.append(self.train_counts)
        self.generated_counts = np.max(needed, axis=0)                                    # [K]
        self._check_seeds()

        self.classifier = classifier_lib.load_or_train(builder, self.class_names,
                                                       (train_images, self.train_labels), self.test,
                                                       classifier_settings,
                                                       os.path.join(self.cache_dir, classifier_lib.CACHE_DIR))
        cross_fit.fit_classifiers(self.folds, builder, self.class_names, (train_images, self.train_labels),
                                  self.test, classifier_settings, self.cache_dir)

        # Real reference features per space and fold: the held-out half of each fold.
        self._reference = {"classifier": [fold.reference_features(train_images) for fold in self.folds]}
        self.inception, self.inception_skipped = inception.load(inception_weights)
        if self.inception is None and inception_weights not in ("", inception.NONE):
            logging.warning("Inception metrics (FID, KID) skipped: %s", self.inception_skipped)
        if self.inception is not None:
            train_features = self._inception_real_features(train_images)                  # [N, 2048]
            self._reference["inception"] = [train_features[fold.reference_indices] for fold in self.folds]
        self.setup_seconds = time.perf_counter() - setup_start
        self.last_seconds = {}

    def _check_seeds(self):
        largest = int(self.generated_counts.max())
        if largest > SEED_STRIDE:
            raise UserError(f"this evaluation needs {largest} images of one class, more than the "
                            f"{SEED_STRIDE} seeds each class has: use num_per_class ≤ {SEED_STRIDE}")
        last_seed = self.seed + (len(self.class_names) - 1) * SEED_STRIDE + largest - 1
        if last_seed > SEED_MAX:
            raise UserError(f"--seed={self.seed} is too large: class c uses seeds from seed + c * {SEED_STRIDE} "
                            f"on, up to {last_seed} here, beyond {SEED_MAX}; use --seed ≤ "
                            f"{self.seed - (last_seed - SEED_MAX)}")

    def _inception_real_features(self, train_images):
        """Inception features of the train split, cached next to the dataset per weights digest."""
        path = os.path.join(self.cache_dir, INCEPTION_CACHE_DIR,
                            f"train_{self.inception.digest()[:16]}.npy")
        try:
            features = np.load(path)
            if features.shape == (len(train_images), inception.FEATURE_DIM):
                return features
        except (OSError, ValueError):
            pass
        logging.info("Inception features of %d real images (once per dataset and weights)", len(train_images))
        features = self.inception(train_images)
        buffer = io.BytesIO()
        np.save(buffer, features)
        try:
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as e:
            logging.warning("Cannot cache Inception features in %s (%s)", path, e.strerror or e)
        return features

    def description(self):
        """What the numbers were measured with: makes two reports comparable (or shows why not)."""
        names = self.class_names
        test_counts = collections.Counter(self.test[1].tolist())

        def per_class(counts):
            return {names[c]: int(counts[c]) for c in range(len(names))}

        folds = []
        for fold in self.folds:
            reference_labels = self.train_labels[fold.reference_indices]
            h1, h2 = fold.splits[0]  # stratified: every split of a fold has the same sizes
            folds.append({
                "feature_classifier": cross_fit.HALF_CACHE_DIR.format(fold.index),
                "feature_classifier_train_count": len(fold.train_indices),
                "feature_classifier_test_accuracy": fold.classifier.info.get("test_accuracy"),
                "reference_count": len(fold.reference_indices),
                "h1_count": len(h1), "h2_count": len(h2),
                "h1_counts": per_class(np.bincount(reference_labels[h1], minlength=len(names))),
                "h2_counts": per_class(np.bincount(reference_labels[h2], minlength=len(names))),
            })
        return {
            "dataset": self.builder.info.full_name,
            "class_names": list(names),
            "resolution": self.resolution,
            "generated": {
                "num_per_class": self.num_per_class,
                "seed": self.seed,
                "seed_stride": SEED_STRIDE,
                "seeds": (f"image i of class c is sampling.generate(generator, c, [{self.seed} + c * {SEED_STRIDE} "
                          f"+ i]), the image i of sample.py --label=c --seed={self.seed} + c * {SEED_STRIDE}; no "
                          f"seed serves two classes"),
                "generated_counts": per_class(self.generated_counts),
                "gan_test_set": f"images 0..{self.num_per_class - 1} of each class",
                "cas_training_set": ("images 0..N_c-1 of class c, N_c = its count in the real train split"
                                     if self.train_cas else "not trained (train_cas=False)"),
                "distance_sets": "images 0..|H1 ∩ c|-1 of class c: sized and class-mixed like H1",
            },
            "real": {
                "train_counts": per_class(self.train_counts),
                "test_counts": per_class([test_counts.get(c, 0) for c in range(len(names))]),
                "reference": {
                    "protocol": ("cross-fitted: the train split in two stratified halves; feature classifier k "
                                 "trained on half k only; fold k measures in its space against the other half, "
                                 "split num_splits times (stratified) into H1 and H2: floor = d(H1, H2), "
                                 "generated = d(G, H2), G sized and class-mixed like H1; means over both folds "
                                 "and all splits, per class on the class's parts of H1, H2, G"),
                    "halves_seed": cross_fit.SPLIT_SEED,
                    "splits_seed": self.seed,
                    "num_splits": len(self.folds[0].splits),
                    "folds": folds,
                    "inception": "the same reference sets and floors",
                },
            },
            "classifier": {**{k: v for k, v in self.classifier.info.items() if k != "class_names"},
                           "cached": self.classifier.cached, "cache_dir": self.classifier.cache_dir,
                           "trained_on": "the whole real train split",
                           "used_for": "classifier_test_accuracy and gan_test"},
            "feature_classifiers": [
                {**{k: v for k, v in fold.classifier.info.items() if k != "class_names"},
                 "cached": fold.classifier.cached, "cache_dir": fold.classifier.cache_dir,
                 "trained_on": f"half {fold.index} of the real train split",
                 "features": f"'{classifier_lib.FEATURE_LAYER}' layer, 128-D"} for fold in self.folds],
            "cas": ({"trained_on": "generated images only, labels = the class asked for, the real train split's "
                                   "class counts", "recipe": "that of the real-trained classifier",
                     "scored_on": "the real test split"} if self.train_cas
                    else {"skipped": "train_cas=False"}),
            "inception": {**(self.inception.description() if self.inception is not None
                             else {"skipped": self.inception_skipped}), "note": FID_NOTE},
            "kid": {"kernel": "(x.y / d + 1)^3", "estimator": "unbiased MMD^2",
                    "num_subsets": kid.NUM_SUBSETS, "max_subset_size": kid.MAX_SUBSET_SIZE, "seed": self.seed},
            "precision_recall": {"k": precision_recall.K, "set_sizes": "larger set subsampled to the smaller",
                                 "seed": self.seed},
        }

    def generate(self, generator, latent_dim):
        """The fixed-seed images of every class.

        Args:
            generator: keras.Model ([z, labels] -> [B, R, R, 3] in [-1, 1]).
            latent_dim: size of z.

        Returns:
            list over classes c of [generated_counts[c], R, R, 3] uint8, image i from seed
            seed + c · SEED_STRIDE + i.
        """
        return [sampling.generate(generator, label, image_seeds(self.seed, label, int(count)), latent_dim)
                for label, count in enumerate(self.generated_counts)]

    def measure(self, generated):
        """Measures given images as the generator's.

        Args:
            generated: list over classes c of [≥ generated_counts[c], R, R, 3] uint8, the images made
                for class c in seed order (what `generate` returns).

        Returns:
            dict[str, float]: see the module docstring.
        """
        for label, (pictures, count) in enumerate(zip(generated, self.generated_counts)):
            if len(pictures) < count:
                raise ValueError(f"class {label}: {len(pictures)} images given, {count} needed")
        names = self.class_names
        labels_of = lambda counts: np.repeat(np.arange(len(names)), counts)  # noqa: E731
        test_accuracy = self.classifier.info["test_accuracy"]
        values = {"classifier_test_accuracy": test_accuracy}
        for name, value in self.classifier.info.get("test_accuracy_per_class", {}).items():
            values[f"classifier_test_accuracy/{name}"] = value

        start = time.perf_counter()
        n = self.num_per_class
        overall, per_class = cas_lib.gan_test(self.classifier, np.concatenate([g[:n] for g in generated]),
                                              labels_of([n] * len(names)), names)
        values.update(_with_classes("gan_test", overall, per_class))
        values["gan_test_ratio"] = overall / test_accuracy if test_accuracy else math.nan
        seconds = {"gan_test": time.perf_counter() - start}

        if self.train_cas:
            start = time.perf_counter()
            overall, per_class = cas_lib.classification_accuracy_score(
                np.concatenate([g[:count] for g, count in zip(generated, self.train_counts)]),
                labels_of(self.train_counts), self.test, names, self.classifier_settings)
            values.update(_with_classes("cas", overall, per_class))
            values["cas_ratio"] = overall / test_accuracy if test_accuracy else math.nan
            seconds["cas"] = time.perf_counter() - start

        start = time.perf_counter()
        for_distances = np.concatenate([g[:count] for g, count in zip(generated, self.distance_counts)])
        class_starts = np.cumsum(self.distance_counts)[:-1]
        generated_features = {"classifier": [np.split(fold.classifier.features(for_distances), class_starts)
                                             for fold in self.folds]}                    # per fold, per class
        if self.inception is not None:
            by_class = np.split(self.inception(for_distances), class_starts)            # per class [m_c, 2048]
            generated_features["inception"] = [by_class] * len(self.folds)
        for space, per_fold in generated_features.items():
            spaces = [cross_fit.FoldFeatures(reference, self.train_labels[fold.reference_indices], fold.splits,
                                             generated_by_class)
                      for fold, reference, generated_by_class in zip(self.folds, self._reference[space], per_fold)]
            figures = cross_fit.distances_with_floor(spaces, seed=self.seed)
            for key, both in figures.items():
                suffix = "" if key is None else f"/{names[key]}"
                for metric, value in both["generated"].items():
                    name = _SPACE_NAMES[space][metric]
                    values[name + suffix] = value
                    floor = both["floor"].get(metric)
                    if floor is not None:
                        values[f"{name}_floor{suffix}"] = floor
                        if metric == "fd":
                            values[f"{name}_ratio{suffix}"] = value / floor if floor > 0 else math.nan
        values.update(_class_summaries(values, names))
        seconds["distances"] = time.perf_counter() - start
        self.last_seconds = seconds
        return values

    def evaluate(self, generator, latent_dim):
        """Generates the fixed-seed images and measures them.

        Args:
            generator: keras.Model ([z, labels] -> [B, R, R, 3] in [-1, 1]).
            latent_dim: size of z.

        Returns:
            dict[str, float]: "classifier_test_accuracy", "gan_test", "cas", "classifier_fd", … overall,
            and "<name>/<class name>" per class (see the module docstring).
        """
        start = time.perf_counter()
        generated = self.generate(generator, latent_dim)
        generate_seconds = time.perf_counter() - start
        values = self.measure(generated)
        self.last_seconds = {"generate": generate_seconds, **self.last_seconds}
        return values

    def report(self, generator, latent_dim, step=None):
        """evaluate() with everything needed to read and compare the numbers, as a JSON-ready dict."""
        start = time.perf_counter()
        values = self.evaluate(generator, latent_dim)
        seconds = time.perf_counter() - start
        return {"step": step, **self.description(),
                "seconds": {"setup": round(self.setup_seconds, 1), "evaluate": round(seconds, 1),
                            **{k: round(v, 1) for k, v in self.last_seconds.items()}},
                "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
                "worst_class": worst_classes(values, self.class_names),
                "metrics": {name: _finite_or_none(value) for name, value in sorted(values.items())}}


def _with_classes(name, overall, per_class):
    return {name: overall, **{f"{name}/{class_name}": value for class_name, value in per_class.items()}}


def _class_summaries(values, class_names):
    """The per-class figures the quality targets read: mean and lowest recall, highest FD ratio."""
    def present(name):
        return [values[f"{name}/{c}"] for c in class_names
                if f"{name}/{c}" in values and math.isfinite(values[f"{name}/{c}"])]
    summaries = {}
    recall, recall_floor, ratio = (present("classifier_recall"), present("classifier_recall_floor"),
                                   present("classifier_fd_ratio"))
    if recall:
        summaries["classifier_recall_class_mean"] = float(np.mean(recall))
        summaries["classifier_recall_class_min"] = float(np.min(recall))
    if recall_floor:
        summaries["classifier_recall_floor_class_mean"] = float(np.mean(recall_floor))
    if ratio:
        summaries["classifier_fd_ratio_class_max"] = float(np.max(ratio))
    return summaries


def worst_classes(values, class_names):
    """The class with the lowest classifier recall and the one with the highest classifier FD / floor.

    Args:
        values: metrics from Evaluator.evaluate (or a report's "metrics").
        class_names: the class names.

    Returns:
        {"lowest_recall": {"class", "recall", "recall_floor"} or None,
         "highest_fd_ratio": {"class", "fd_ratio", "fd", "fd_floor"} or None}.
    """
    def finite(name):
        value = values.get(name)
        return value if value is not None and math.isfinite(value) else None

    recalls = {c: finite(f"classifier_recall/{c}") for c in class_names}
    recalls = {c: v for c, v in recalls.items() if v is not None}
    ratios = {c: finite(f"classifier_fd_ratio/{c}") for c in class_names}
    ratios = {c: v for c, v in ratios.items() if v is not None}
    lowest = min(recalls, key=recalls.get) if recalls else None
    highest = max(ratios, key=ratios.get) if ratios else None
    return {
        "lowest_recall": None if lowest is None else {
            "class": lowest, "recall": recalls[lowest], "recall_floor": finite(f"classifier_recall_floor/{lowest}")},
        "highest_fd_ratio": None if highest is None else {
            "class": highest, "fd_ratio": ratios[highest], "fd": finite(f"classifier_fd/{highest}"),
            "fd_floor": finite(f"classifier_fd_floor/{highest}")},
    }


def _finite_or_none(value):
    return value if math.isfinite(value) else None  # JSON has no NaN


def write_scalars(writer, values, step):
    """Writes metrics as TensorBoard scalars named eval/<name> (eval/cas, eval/fid/melanoma, ...).

    Args:
        writer: a tf.summary writer.
        values: dict from Evaluator.evaluate (or a report's "metrics"; None values are skipped).
        step: the generator's training step.
    """
    with writer.as_default(step=step):
        for name, value in sorted(values.items()):
            if value is not None and math.isfinite(value):
                tf.summary.scalar(f"eval/{name}", value)
    writer.flush()


def _run_config(workdir, info):
    """The run's config: workdir/config.json, else the copy stored with the exported generator."""
    path = os.path.join(workdir, "config.json")
    try:
        return TrainConfig.from_json(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"cannot read {path} ({type(e).__name__}: {e}): it is written by trainer.py") from None
    if isinstance(info.get("config"), dict):
        names = set(TrainConfig.__dataclass_fields__)
        return TrainConfig(**{k: v for k, v in info["config"].items() if k in names})
    raise UserError(f"no config.json in {workdir}: pass the --workdir of a run made by trainer.py")


def evaluate(workdir, num_per_class=DEFAULT_NUM_PER_CLASS, seed=0, inception_weights=inception.IMAGENET,
             json_path=None, train_cas=True, classifier_settings=classifier_lib.ClassifierSettings()):
    """Evaluates a run's exported generator on the run's dataset; writes a JSON report and scalars.

    Args:
        workdir: run directory with generator.keras, generator.json and config.json.
        num_per_class: generated images per class.
        seed: first generator seed.
        inception_weights: "imagenet", "none" or a weights file.
        json_path: where to write the report; None = <workdir>/eval/report_step_<step>.json.
        train_cas: whether to train the CAS classifier (Evaluator).
        classifier_settings: the classifiers' recipe (Evaluator).

    Returns:
        (report dict, path of the JSON written).

    Raises:
        UserError: missing workdir, model or config; dataset that does not match; bad flag values.
    """
    if not os.path.isdir(workdir):
        raise UserError(f"--workdir={workdir} is not a directory: pass the run directory of trainer.py")
    model_path = os.path.join(workdir, export.GENERATOR_FILE)
    if not os.path.isfile(model_path):
        raise UserError(f"no {export.GENERATOR_FILE} in {workdir}: trainer.py exports it at every checkpoint "
                        f"(--checkpoint_every); evaluate once the run has saved one")
    generator, info = export.load_generator(model_path)
    config = _run_config(workdir, info)
    builder = datasets.prepare(config.dataset, config.data_dir, config.manual_dir)
    resolution = int(info.get("resolution") or generator.output_shape[1])
    evaluator = Evaluator(builder, info["class_names"], resolution, num_per_class=num_per_class, seed=seed,
                          inception_weights=inception_weights, classifier_settings=classifier_settings,
                          train_cas=train_cas)
    step = int(info.get("step", 0))
    report = evaluator.report(generator, info["latent_dim"], step=step)
    report["generator"] = os.path.abspath(model_path)
    eval_dir = os.path.join(workdir, EVAL_DIR)
    json_path = json_path or os.path.join(eval_dir, f"report_step_{step:06d}.json")
    atomic_write_bytes(json_path, (json.dumps(report, indent=2) + "\n").encode())
    write_scalars(tf.summary.create_file_writer(eval_dir), report["metrics"], step)
    return report, json_path


def _figure(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}g}"


def summary_lines(report):
    """The report as a few lines of text: the main figures, the worst class, then a line per class."""
    values, names = report["metrics"], report["class_names"]
    get = values.get
    lines = [f"{report.get('generator', 'generator')} (step {report['step']}) on {report['dataset']}: "
             f"{report['generated']['num_per_class']} images per class for gan_test, class c's image i from "
             f"seed {report['generated']['seed']} + c * {report['generated']['seed_stride']} + i"]
    worst = report["worst_class"]
    worst_text = []
    if worst["lowest_recall"]:
        w = worst["lowest_recall"]
        worst_text.append(f"lowest recall {w['class']} {_figure(w['recall'], 3)} "
                          f"(floor {_figure(w['recall_floor'], 3)})")
    if worst["highest_fd_ratio"]:
        w = worst["highest_fd_ratio"]
        worst_text.append(f"highest FD/floor {w['class']} {_figure(w['fd_ratio'], 3)}")
    accuracy = [f"classifier_test_accuracy {_figure(get('classifier_test_accuracy'))}",
                f"gan_test {_figure(get('gan_test'))} ({_figure(get('gan_test_ratio'), 3)}x)"]
    if get("cas") is not None:
        accuracy.append(f"cas {_figure(get('cas'))} ({_figure(get('cas_ratio'), 3)}x)")
    lines.append("  ".join(accuracy) + "  worst class: " + ("; ".join(worst_text) or "n/a"))
    for space_names in _SPACE_NAMES.values():
        fd = space_names["fd"]
        if get(fd) is None:
            continue
        parts = [f"{fd} {_figure(get(fd))} (floor {_figure(get(fd + '_floor'))}, {_figure(get(fd + '_ratio'), 3)}x)"]
        for name in (space_names["kid"], space_names["precision"], space_names["recall"]):
            if get(name) is not None:
                parts.append(f"{name} {_figure(get(name))} (floor {_figure(get(name + '_floor'))})")
        lines.append("  ".join(parts))
    if get("classifier_recall_class_mean") is not None:
        lines.append(f"per-class recall mean {_figure(get('classifier_recall_class_mean'), 3)} "
                     f"(floor {_figure(get('classifier_recall_floor_class_mean'), 3)}), "
                     f"min {_figure(get('classifier_recall_class_min'), 3)}; "
                     f"per-class FD/floor max {_figure(get('classifier_fd_ratio_class_max'), 3)}")
    if "skipped" in report["inception"]:
        lines.append(f"fid, kid: skipped ({report['inception']['skipped']})")
    else:
        lines.append("note: " + report["inception"]["note"])
    columns = ("gan_test", "cas", "classifier_fd", "classifier_fd_floor", "classifier_fd_ratio",
               "classifier_recall", "classifier_recall_floor")
    shown = [c for c in columns if any(get(f"{c}/{name}") is not None for name in names)]
    width = max(len(name) for name in names)
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{c.replace('classifier_', ''):>12}" for c in shown))
    for name in names:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{_figure(get(f'{c}/{name}'), 4):>12}" for c in shown))
    return lines


def _define_flags():
    # Defined only when run as a program, so importing this module (as trainer.py does) adds no flags.
    from absl import flags
    flags.DEFINE_string("workdir", None, "Run directory of trainer.py (generator.keras, config.json).")
    flags.DEFINE_integer("num_per_class", DEFAULT_NUM_PER_CLASS,
                         "Generated images per class for GAN-test (CAS and the distances take as many as "
                         "they need, see cgan.evaluate).", lower_bound=2)
    flags.DEFINE_integer("seed", 0, f"First seed; image i of class c uses seed + c * {SEED_STRIDE} + i.",
                         lower_bound=0)
    flags.DEFINE_string("inception_weights", inception.IMAGENET,
                        "InceptionV3 weights for FID/KID: 'imagenet' (Keras cache or download), a local "
                        "no-top weights file, or 'none' to skip them.")
    flags.DEFINE_string("json", None, "Report path; default <workdir>/eval/report_step_<step>.json.")
    flags.mark_flag_as_required("workdir")


def _parse_flags(argv):
    from absl import flags
    _define_flags()
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv):
    from absl import flags
    flag_values = flags.FLAGS
    if len(argv) > 1:
        print(f"evaluate: error: unexpected arguments {argv[1:]}: flags take the form --name=value",
              file=sys.stderr)
        sys.exit(2)
    start = time.perf_counter()
    try:
        report, path = evaluate(flag_values.workdir, flag_values.num_per_class, flag_values.seed,
                                flag_values.inception_weights, flag_values.json)
    except UserError as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)
    for line in summary_lines(report):
        print(line)
    print(f"Report: {path}  TensorBoard: {os.path.join(flag_values.workdir, EVAL_DIR)}  "
          f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    from absl import app
    app.run(main, flags_parser=_parse_flags)
