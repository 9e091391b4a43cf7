"""Evaluates a generator against the real images: classifier metrics offline, FID/KID with Inception.

    python -m cgan.evaluate --workdir=runs/demo          # runs/demo/eval/report_step_003000.json and .png (card)

    evaluator = evaluate.Evaluator(builder, class_names, resolution=64, num_per_class=100)  # once
    metrics = evaluator.evaluate(generator, latent_dim)  # {"gan_test": ..., "classifier_fd": ..., ...}
    evaluate.write_metrics(writer, metrics, step)         # TensorBoard: eval/gan_test, eval/fid/melanoma, ...

Seeds: image i of class c comes from seed `seed + c * SEED_STRIDE + i`, so no noise vector serves two
classes and a class's image i does not depend on how many images other classes get; every metric
takes the FIRST images of a class (GAN-test: num_per_class; CAS: the class's count in the real train
split; distances: the class's count in the held-out half they compare with).

Metrics (keys; "/<class>" for per-class values): classifier_test_accuracy, gan_test(_ratio) (GAN-test,
Shmelkov et al. 2018), cas(_ratio) (Ravuri & Vinyals 2019), assigned_elsewhere, structure_diversity
(_real, _ratio; metrics/structure.py), and in two cross-fitted classifier spaces (metrics/cross_fit.py)
classifier_{fd,kid,precision,recall,density,coverage}, each with `_floor` (the same between two
disjoint real sets at equal sizes), plus per-class summaries (_class_mean, _class_min, _class_max).
fid, kid, inception_{precision,recall} use Keras' ImageNet Inception-v3 when its weights are there:
compare them with this tool's reports only. A metric needing more samples than a set has is left out
for it. BUILD_NOTES.md ("Evaluation") gives the reasons; cgan.evaluation.report reads the reports.
"""

import collections
import dataclasses
import io
import math
import os
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from cgan.core import options
from cgan.core.options import SEED_MAX

from cgan.inputs import datasets, input_pipeline

from cgan.model import model_files, sampling

from cgan.run import run_source
from cgan.core.errors import UserError
from cgan.evaluation import report_card
from cgan.evaluation.report import SPACE_NAMES, class_summaries, finite_or_none, summary_lines, worst_classes
from cgan.core.files import atomic_write_bytes, atomic_write_json
from cgan.evaluation.metrics import cas as cas_lib
from cgan.evaluation.metrics import classifier as classifier_lib
from cgan.evaluation.metrics import cross_fit, inception, kid, precision_recall, structure

SEED_STRIDE = 1_000_000   # seeds of class c start at seed + c * SEED_STRIDE: no class reuses another's
PROGRAM = "evaluate"      # python -m cgan.evaluate
REPORT_NAME = "report"    # eval/report_step_<step>.json
INCEPTION_CACHE_DIR = "inception_features"
FID_NOTE = ("FID/KID here use Keras' ImageNet InceptionV3 weights and a bilinear resize to 299x299, not the "
            "TF1 Inception graph and resize of the reference FID code: they compare with other reports of "
            "this tool only, never with published FIDs")


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

    def __init__(self, builder, class_names, resolution, num_per_class=options.NUM_PER_CLASS, seed=0,
                 inception_weights=options.INCEPTION_IMAGENET, classifier_settings=classifier_lib.ClassifierSettings(),
                 cache_dir=None, train_cas=True, num_splits=cross_fit.NUM_SPLITS, splits=None):
        """
        Args:
            builder: the prepared TFDS builder of the run's dataset (cgan.inputs.datasets.prepare).
            class_names: label names of the generator, index i naming label i.
            resolution: the generator's image size in pixels.
            num_per_class: generated images per class for GAN-test (n); ≥ 2.
            seed: first generator seed; image i of class c uses seed + c · SEED_STRIDE + i.
            inception_weights: "imagenet", "none", or the path of a weights file (cgan.evaluation.metrics.inception).
            classifier_settings: ClassifierSettings of the real-trained classifier, of the CAS classifier
                (the same recipe) and, with twice the epochs, of the half classifiers.
            cache_dir: where the classifiers and the real images' Inception features are cached
                (subfolders classifier/, classifier_half0/, classifier_half1/, inception_features/);
                None = builder.data_dir.
            train_cas: whether every evaluation trains the CAS classifier (one classifier training).
            num_splits: H1/H2 splits of each held-out half (cgan.evaluation.metrics.cross_fit).
            splits: (train, test) of the builder's dataset when already loaded, each (images [N, R, R, 3]
                uint8, labels [N] int) (a run_source.Source's); None loads them.

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
        if splits is None:
            splits = input_pipeline.load_split(builder, "train"), input_pipeline.load_split(builder, "test")
        (train_images, self.train_labels), self.test = splits                              # [N, R, R, 3], [N]
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
        # Every other classifier (the cross-fitted halves, CAS) follows its recipe, flips as resolved.
        self.classifier_settings = self.classifier.settings
        cross_fit.fit_classifiers(self.folds, builder, self.class_names, (train_images, self.train_labels),
                                  self.test, self.classifier_settings, self.cache_dir)

        # Real reference features per space and fold: the held-out half of each fold.
        self._reference = {"classifier": [fold.reference_features(train_images) for fold in self.folds]}
        # Within-class diversity of the real images in the colour-blind structure space, per class.
        self._real_structure_diversity = [
            structure.diversity(structure.descriptors(train_images[self.train_labels == label]))
            if count >= structure.MIN_SAMPLES else None for label, count in enumerate(self.train_counts)]
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
                "reference": {**cross_fit.description(self.folds, self.train_labels, names, self.seed),
                              "inception": "the same reference sets and floors"},
            },
            "classifier": {**self.classifier.description(), "trained_on": "the whole real train split",
                           "used_for": "classifier_test_accuracy and gan_test"},
            "feature_classifiers": [
                {**fold.classifier.description(), "trained_on": f"half {fold.index} of the real train split",
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
        values.update({f"assigned_elsewhere/{name}": 1.0 - accuracy for name, accuracy in per_class.items()})
        seconds = {"gan_test": time.perf_counter() - start}
        start = time.perf_counter()
        values.update(self._structure_figures(generated))
        seconds["structure"] = time.perf_counter() - start

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
                    name = SPACE_NAMES[space][metric]
                    values[name + suffix] = value
                    floor = both["floor"].get(metric)
                    if floor is not None:
                        values[f"{name}_floor{suffix}"] = floor
                        if metric == "fd":
                            values[f"{name}_ratio{suffix}"] = value / floor if floor > 0 else math.nan
        values.update(class_summaries(values, names))
        seconds["distances"] = time.perf_counter() - start
        self.last_seconds = seconds
        return values

    def _structure_figures(self, generated):
        """Per class: the generated images' (the GAN-test ones) and the real train images' diversity in
        the colour-blind structure space (cgan.evaluation.metrics.structure), and their ratio."""
        values = {}
        for label, name in enumerate(self.class_names):
            real = self._real_structure_diversity[label]
            if real is None:
                continue
            diversity = structure.diversity(structure.descriptors(generated[label][:self.num_per_class]))
            values[f"structure_diversity/{name}"] = diversity
            values[f"structure_diversity_real/{name}"] = real
            values[f"structure_diversity_ratio/{name}"] = diversity / real if real > 0 else math.nan
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
                "metrics": {name: finite_or_none(value) for name, value in sorted(values.items())}}


def _with_classes(name, overall, per_class):
    return {name: overall, **{f"{name}/{class_name}": value for class_name, value in per_class.items()}}


def write_metrics(writer, values, step):
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


@dataclasses.dataclass(frozen=True)
class Settings(options.Options):
    """What `python -m cgan.evaluate` generates and with which feature models."""
    num_per_class: int = options.num_per_class("Generated images per class for GAN-test (CAS and the distances "
                                               "take as many as they need).")
    seed: int = options.image_seed(f"image i of class c takes seed + c × {SEED_STRIDE:,} + i.")
    inception_weights: str = options.inception_weights()
    classifier_flips: str = options.classifier_flips()


def measure(source, settings, report_path=None, train_cas=True, classifier_settings=None):
    """The evaluation report of a loaded run (run_source.Source); see the module docstring.

    Args:
        source: run_source.Source.
        settings: Settings.
        report_path: the report's path; its report card (cgan.evaluation.report_card) is written beside it,
            the same path with .png, and named in report["report_card"]; None = no card.
        train_cas: whether to train the CAS classifier (Evaluator).
        classifier_settings: the classifiers' recipe; None = the default with settings' flips.
    """
    classifier_settings = classifier_settings or classifier_lib.ClassifierSettings(flips=settings.classifier_flips)
    evaluator = Evaluator(source.builder, source.class_names, source.resolution,
                          num_per_class=settings.num_per_class, seed=settings.seed,
                          inception_weights=settings.inception_weights,
                          classifier_settings=classifier_settings,
                          train_cas=train_cas, splits=(source.train, source.test))
    report = evaluator.report(source.generator, source.latent_dim, step=source.step)
    report["generator"] = source.model_path
    if report_path is not None:
        report["report_card"] = report_card.write(report_card.card_path(report_path), source, report, settings.seed)
    return report


def write_scalars(writer, report):
    """A report's metrics as TensorBoard scalars (write_metrics)."""
    write_metrics(writer, report["metrics"], report["step"])

