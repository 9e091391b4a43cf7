"""Evaluates a generator against the real images: classifier metrics offline, FID/KID with Inception.

    python -m cgan.evaluate --workdir=runs/demo          # report: runs/demo/eval/report_step_003000.json
    python -m cgan.evaluate --workdir=runs/demo --num_per_class=200 --seed=0 \\
        --inception_weights=~/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 --json=report.json

    # In a training loop (set up once, then every few thousand steps):
    evaluator = evaluate.Evaluator(builder, class_names, resolution=64, num_per_class=100, seed=0,
                                   inception_weights="imagenet")
    metrics = evaluator.evaluate(generator, latent_dim)  # {"cas": 0.93, "cas/melanoma": 0.97, "fid": 41.2, ...}
    evaluate.write_scalars(writer, metrics, step)         # TensorBoard: eval/cas, eval/fid/melanoma, ...

What is generated: for every class c, images i = 0 … n−1 from seed `--seed + i`
(`sampling.generate(generator, c, seeds)`, the images `sample.py --label=c --seed=S --num=n` writes),
the same seeds at every evaluation so numbers are comparable across steps. Per-class metrics use
these n images of each class. Overall metrics use a set of about n·K images (K classes) with the class
mix of the real train split, as the generator is trained on that mix: class c contributes its first
round(n·K·p_c) images, generating more than n where p_c > 1/K.

Metrics (keys of the returned dict; "/<class name>" for per-class values):
- classifier_test_accuracy: the evaluation classifier (cgan.metrics.classifier, a small CNN trained on
  the real train split and cached next to the dataset) on the real test split.
- cas: that classifier's accuracy on generated images, the label being the class asked for; overall =
  mean over classes. (Shmelkov et al. 2018 call this GAN-test; the CAS of Ravuri & Vinyals 2019
  trains on generated images and tests on real ones, which this does not compute.)
- classifier_fd, classifier_kid (+ _std), classifier_precision, classifier_recall: Fréchet distance,
  KID and k-NN precision/recall (k = 3) in the classifier's 128-D penultimate features, against the
  real train split (cgan.metrics).
- fid, kid (+ _std), inception_precision, inception_recall: the same on Inception-v3 pool features
  (cgan.metrics.inception), when its weights are available; otherwise absent, and the report says why.
FD values depend on the sample counts (biased up for small sets); KID does not. Compare reports only
at equal num_per_class. A metric needing more samples than a class has (precision/recall needs 4 real
images) is left out for that class.

Cost on the 2-core development CPU while another training run shared it (load ~4.5, so roughly
half the CPU), synthetic_64 (2,239 train images), the default 100 images per class (1,157 generated);
Inception timed with random weights (same network, same cost):
- Evaluator(): ~3 s with a cached classifier, plus once per dataset ~50 s to train the classifier
  (15 epochs; test accuracy 0.958); with Inception, once per dataset and weights ~130 s for the
  features of the real images (~17 images/s at 299×299), ~7 s when cached.
- evaluate(): ~3.5 s without Inception (generation, classifier, metrics), 70–85 s with it.
Each evaluation costs about as much as 25 (without Inception) or 600 (with) demo training steps.
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

from cgan import datasets, export, input_pipeline, metrics, sampling
from cgan.config import TrainConfig
from cgan.errors import UserError
from cgan.files import atomic_write_bytes
from cgan.metrics import classifier as classifier_lib
from cgan.metrics import inception, kid, precision_recall

DEFAULT_NUM_PER_CLASS = 100
EVAL_DIR = "eval"
INCEPTION_CACHE_DIR = "inception_features"
# Metric names in the Inception space follow the literature; the classifier's carry its prefix.
_INCEPTION_NAMES = {"fd": "fid", "kid": "kid", "kid_std": "kid_std", "precision": "inception_precision",
                    "recall": "inception_recall"}


def generation_plan(train_labels, num_classes, num_per_class):
    """How many images to generate per class.

    Args:
        train_labels: [N] int labels of the real train split.
        num_classes: K.
        num_per_class: images per class for per-class metrics (n).

    Returns:
        (generate, overall): [K] int arrays; generate[c] images are made for class c, the first
        overall[c] of them form the overall set (class mix of the train split, about n·K images).
    """
    shares = np.bincount(train_labels, minlength=num_classes) / len(train_labels)      # [K]
    overall = np.rint(shares * num_per_class * num_classes).astype(int)
    return np.maximum(overall, num_per_class), overall


class Evaluator:
    """Holds what does not change between evaluations: real images, their features, the classifier.

    Build it once (it may train the classifier and compute Inception features of the real images;
    see the costs above), outside any distribution strategy scope and on the chief worker only, then
    call `evaluate` as often as needed: the same seeds every time, so values compare across steps.
    """

    def __init__(self, builder, class_names, resolution, num_per_class=DEFAULT_NUM_PER_CLASS, seed=0,
                 inception_weights=inception.IMAGENET, classifier_settings=classifier_lib.ClassifierSettings(),
                 cache_dir=None):
        """
        Args:
            builder: the prepared TFDS builder of the run's dataset (cgan.datasets.prepare).
            class_names: label names of the generator, index i naming label i.
            resolution: the generator's image size in pixels.
            num_per_class: generated images per class (n); ≥ 2.
            seed: first generator seed; image i of every class uses seed + i.
            inception_weights: "imagenet", "none", or the path of a weights file (cgan.metrics.inception).
            classifier_settings: ClassifierSettings of the evaluation classifier.
            cache_dir: where the classifier and the real images' Inception features are cached
                (subfolders classifier/ and inception_features/); None = builder.data_dir.

        Raises:
            UserError: bad sample count, a dataset that does not match the generator, a missing
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
        train_images, self.train_labels = input_pipeline.load_split(builder, "train")  # [N, R, R, 3], [N]
        test_images, test_labels = input_pipeline.load_split(builder, "test")
        if train_images.shape[1] != resolution:
            raise UserError(f"the generator makes {resolution}x{resolution} images but "
                            f"{builder.info.full_name} holds {train_images.shape[1]}x{train_images.shape[2]}: "
                            f"evaluate on the dataset config the run was trained on")
        self.resolution = int(resolution)
        num_classes = len(self.class_names)
        self.generate_counts, self.overall_counts = generation_plan(self.train_labels, num_classes,
                                                                    self.num_per_class)

        self.classifier = classifier_lib.load_or_train(builder, self.class_names,
                                                       (train_images, self.train_labels),
                                                       (test_images, test_labels),
                                                       classifier_settings,
                                                       os.path.join(self.cache_dir, classifier_lib.CACHE_DIR))
        # Real features per space: the whole train split (overall) and each class's part of it.
        self._real = {"classifier": self.classifier.features(train_images)}          # [N, 128]
        self.inception, self.inception_skipped = inception.load(inception_weights)
        if self.inception is None and inception_weights not in ("", inception.NONE):
            logging.warning("Inception metrics (FID, KID) skipped: %s", self.inception_skipped)
        if self.inception is not None:
            self._real["inception"] = self._inception_real_features(train_images)    # [N, 2048]
        self.setup_seconds = time.perf_counter() - setup_start

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
        counts = collections.Counter(self.train_labels.tolist())
        return {
            "dataset": self.builder.info.full_name,
            "class_names": list(names),
            "resolution": self.resolution,
            "generated": {
                "num_per_class": self.num_per_class,
                "seed": self.seed,
                "seeds": (f"image i of class c is sampling.generate(generator, c, [{self.seed} + i]) "
                          f"(sample.py --label=c --seed={self.seed})"),
                "per_class_set": f"images 0..{self.num_per_class - 1} of each class",
                "generated_counts": dict(zip(names, self.generate_counts.tolist())),
                "overall_counts": dict(zip(names, self.overall_counts.tolist())),
                "overall_set": "first overall_counts[c] images of each class: the class mix of the train split",
            },
            "real": {"reference_split": "train", "counts": {names[c]: counts.get(c, 0) for c in range(len(names))},
                     "classifier_test_split": "test"},
            "classifier": {**{k: v for k, v in self.classifier.info.items() if k != "class_names"},
                           "cached": self.classifier.cached, "cache_dir": self.classifier.cache_dir,
                           "features": f"'{classifier_lib.FEATURE_LAYER}' layer, 128-D"},
            "inception": (self.inception.description() if self.inception is not None
                          else {"skipped": self.inception_skipped}),
            "kid": {"kernel": "(x.y / d + 1)^3", "estimator": "unbiased MMD^2",
                    "num_subsets": kid.NUM_SUBSETS, "max_subset_size": kid.MAX_SUBSET_SIZE, "seed": self.seed},
            "precision_recall": {"k": precision_recall.K, "set_sizes": "larger set subsampled to the smaller",
                                 "seed": self.seed},
        }

    def evaluate(self, generator, latent_dim):
        """Generates the fixed-seed images and measures them.

        Args:
            generator: keras.Model ([z, labels] -> [B, R, R, 3] in [-1, 1]).
            latent_dim: size of z.

        Returns:
            dict[str, float]: "classifier_test_accuracy", "cas", "classifier_fd", ... overall, and
            "<name>/<class name>" per class (see the module docstring).
        """
        seeds = range(self.seed, self.seed + int(self.generate_counts.max()))
        generated = [sampling.generate(generator, label, seeds[:count], latent_dim)  # [count, R, R, 3]
                     for label, count in enumerate(self.generate_counts)]
        pictures = np.concatenate(generated)
        labels = np.repeat(np.arange(len(generated)), self.generate_counts)          # [total]
        starts = np.concatenate([[0], np.cumsum(self.generate_counts)[:-1]])
        per_class = [start + np.arange(self.num_per_class) for start in starts]     # indices into pictures
        overall = np.concatenate([start + np.arange(count) for start, count in zip(starts, self.overall_counts)])

        features, predictions = self.classifier.features_and_predictions(pictures)
        values = {"classifier_test_accuracy": self.classifier.info["test_accuracy"]}
        for label, name in enumerate(self.class_names):
            values[f"cas/{name}"] = float(np.mean(predictions[per_class[label]] == label))
        values["cas"] = float(np.mean([values[f"cas/{name}"] for name in self.class_names]))

        spaces = {"classifier": features}
        if self.inception is not None:
            spaces["inception"] = self.inception(pictures)                         # [total, 2048]
        for space, generated_features in spaces.items():
            real = self._real[space]
            subsets = [("", real, generated_features[overall])]
            subsets += [(f"/{name}", real[self.train_labels == label], generated_features[per_class[label]])
                        for label, name in enumerate(self.class_names)]
            for suffix, real_subset, generated_subset in subsets:
                for key, value in metrics.compute(real_subset, generated_subset, seed=self.seed).items():
                    name = _INCEPTION_NAMES[key] if space == "inception" else f"classifier_{key}"
                    values[name + suffix] = value
        return values

    def report(self, generator, latent_dim, step=None):
        """evaluate() with everything needed to read and compare the numbers, as a JSON-ready dict."""
        start = time.perf_counter()
        values = self.evaluate(generator, latent_dim)
        seconds = time.perf_counter() - start
        return {"step": step, **self.description(),
                "seconds": {"setup": round(self.setup_seconds, 1), "evaluate": round(seconds, 1)},
                "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
                "metrics": {name: _finite_or_none(value) for name, value in sorted(values.items())}}


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
             json_path=None):
    """Evaluates a run's exported generator on the run's dataset; writes a JSON report and scalars.

    Args:
        workdir: run directory with generator.keras, generator.json and config.json.
        num_per_class: generated images per class.
        seed: first generator seed.
        inception_weights: "imagenet", "none" or a weights file.
        json_path: where to write the report; None = <workdir>/eval/report_step_<step>.json.

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
                          inception_weights=inception_weights)
    step = int(info.get("step", 0))
    report = evaluator.report(generator, info["latent_dim"], step=step)
    report["generator"] = os.path.abspath(model_path)
    eval_dir = os.path.join(workdir, EVAL_DIR)
    json_path = json_path or os.path.join(eval_dir, f"report_step_{step:06d}.json")
    atomic_write_bytes(json_path, (json.dumps(report, indent=2) + "\n").encode())
    write_scalars(tf.summary.create_file_writer(eval_dir), report["metrics"], step)
    return report, json_path


def _summary_lines(report):
    values = report["metrics"]
    lines = [f"{report['generator']} (step {report['step']}) on {report['dataset']}, "
             f"{report['generated']['num_per_class']} images per class, seed {report['generated']['seed']}"]
    names = ["classifier_test_accuracy", "cas", "classifier_fd", "classifier_kid", "classifier_precision",
             "classifier_recall", "fid", "kid", "inception_precision", "inception_recall"]
    lines.append("  ".join(f"{name} {values[name]:.4g}" for name in names if values.get(name) is not None))
    if "skipped" in report["inception"]:
        lines.append("fid, kid: skipped (why: the report's \"inception\" entry)")
    lines.append("cas per class: " + ", ".join(f"{name} {values[f'cas/{name}']:.2f}"
                                               for name in report["class_names"]))
    return lines


def _define_flags():
    # Defined only when run as a program, so importing this module (as trainer.py does) adds no flags.
    from absl import flags
    flags.DEFINE_string("workdir", None, "Run directory of trainer.py (generator.keras, config.json).")
    flags.DEFINE_integer("num_per_class", DEFAULT_NUM_PER_CLASS,
                         "Generated images per class (the overall set has about this many times the "
                         "number of classes).", lower_bound=2)
    flags.DEFINE_integer("seed", 0, "First seed; image i of every class uses seed + i.", lower_bound=0)
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
    for line in _summary_lines(report):
        print(line)
    print(f"Report: {path}  TensorBoard: {os.path.join(flag_values.workdir, EVAL_DIR)}  "
          f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    from absl import app
    app.run(main, flags_parser=_parse_flags)
