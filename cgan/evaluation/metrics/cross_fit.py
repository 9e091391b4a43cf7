"""Cross-fitted feature spaces: distances to real images the feature classifier never saw, with floors.

    folds = cross_fit.plan_folds(train_labels, seed=0)
    cross_fit.fit_classifiers(folds, builder, class_names, (train_images, train_labels),
                              (test_images, test_labels), settings, cache_dir)
    spaces = [cross_fit.FoldFeatures(fold.reference_features(train_images), train_labels[fold.reference_indices],
                                     fold.splits, [fold.classifier.features(g) for g in generated_by_class])
              for fold in folds]
    figures = cross_fit.distances_with_floor(spaces, seed=0)
    figures[None]["generated"]["fd"], figures[None]["floor"]["fd"]      # overall; figures[3]: class 3

Why: a feature classifier maps the images it was trained on tighter than unseen ones, so a distance to
its own training images rewards a generator that reproduces them. The protocol:
1. The real train split is cut into two stratified halves (`stratified_halves`, the fixed SPLIT_SEED:
   ⌊n_c/2⌋ of class c's n_c images each, the odd ones left balancing the halves' sizes). Classifier k
   (cgan.evaluation.metrics.classifier's recipe with twice the epochs, so as many updates on half the
   images; cached in `classifier_half<k>/`) is trained on half k only.
2. Fold k measures in classifier k's space against half 1−k, cut again, stratified, into H1 and H2
   (`num_splits` times, from `seed`): floor = d(H1, H2); generated = d(G, H2), G holding the first
   |H1 ∩ class c| generated images of every class c. Same sample sizes, class mix and reference, so
   "generated / floor" says how far from real-vs-real the generator is. Per class, the same.
3. Each figure is the mean over the splits of both folds; a metric that some split is too small for
   is left out. The Inception space takes the same reference sets: every space is measured alike.
Not caught: a generator that copies the reference (real train) images scores like real data; copies
are the memorisation check's business (nearest training image of every generated one).
"""

import dataclasses
import os

import numpy as np

from cgan.evaluation import metrics
from cgan.evaluation.metrics import classifier as classifier_lib

SPLIT_SEED = 0          # the train split's halves; part of every half classifier's cache key (its data digest)
NUM_SPLITS = 4          # H1/H2 splits of each held-out half
HALF_CACHE_DIR = classifier_lib.CACHE_DIR + "_half{}"
PROTOCOL = ("cross-fitted: the train split in two stratified halves; feature classifier k trained on half k "
            "only; fold k measures in its space against the other half, split num_splits times (stratified) "
            "into H1 and H2: floor = d(H1, H2), generated = d(G, H2), G sized and class-mixed like H1; means "
            "over both folds and all splits, per class on the class's parts of H1, H2, G")


def stratified_halves(labels, rng):
    """Splits positions 0 … N−1 in two, class by class, with sizes as equal as the classes allow.

    Args:
        labels: [N] int labels.
        rng: numpy Generator drawing each class's order.

    Returns:
        (first, second): sorted int arrays of positions. Of each class's n_c positions, in an order
        drawn from rng, each half takes ⌊n_c/2⌋; the odd one left of a class goes to the half that
        is smaller so far (the second on a tie), so the halves' totals differ by at most one (and a
        dataset of one image per class still gets two non-empty halves).
    """
    labels = np.asarray(labels)
    halves = ([np.zeros(0, int)], [np.zeros(0, int)])
    sizes = [0, 0]
    for label in np.unique(labels):
        positions = rng.permutation(np.flatnonzero(labels == label))
        half = len(positions) // 2
        parts = [positions[:half], positions[half:2 * half]]
        if len(positions) % 2:
            smaller = 0 if sizes[0] < sizes[1] else 1
            parts[smaller] = np.append(parts[smaller], positions[-1])
        for h in (0, 1):
            halves[h].append(parts[h])
            sizes[h] += len(parts[h])
    return np.sort(np.concatenate(halves[0])), np.sort(np.concatenate(halves[1]))


def half_settings(settings):
    """The half classifiers' recipe: `settings` with twice the epochs (as many updates on half the data)."""
    return dataclasses.replace(settings, epochs=2 * settings.epochs)


@dataclasses.dataclass
class Fold:
    """One feature classifier and the real images it never saw.

    Attributes:
        index: k, the half the classifier is trained on.
        train_indices: [N_k] positions in the real train split of the classifier's training images.
        reference_indices: [M_k] positions in the train split of the other half (disjoint from those).
        splits: list of (h1, h2): positions in reference_indices of two disjoint stratified halves.
        classifier: a cgan.evaluation.metrics.classifier.Classifier trained on train_indices only (set by
            fit_classifiers; None before).
    """
    index: int
    train_indices: np.ndarray
    reference_indices: np.ndarray
    splits: list
    classifier: object = None

    def reference_features(self, train_images):
        """[M_k, D] features of the held-out half in this fold's classifier space."""
        return self.classifier.features(train_images[self.reference_indices])

    def split_train_indices(self):
        """[(h1, h2)] of each split as positions in the real train split."""
        return [(self.reference_indices[h1], self.reference_indices[h2]) for h1, h2 in self.splits]


def plan_folds(train_labels, seed=0, num_splits=NUM_SPLITS):
    """The two folds' images: the train split's halves (SPLIT_SEED) and the H1/H2 splits (`seed`).

    Args:
        train_labels: [N] int labels of the real train split.
        seed: seed of the H1/H2 splits.
        num_splits: H1/H2 splits per held-out half.

    Returns:
        [Fold 0, Fold 1], without classifiers.
    """
    labels = np.asarray(train_labels)
    halves = stratified_halves(labels, np.random.default_rng(SPLIT_SEED))
    folds = []
    for k in (0, 1):
        held_in, held_out = halves[k], halves[1 - k]
        rng = np.random.default_rng([seed, k])
        folds.append(Fold(k, held_in, held_out, [stratified_halves(labels[held_out], rng) for _ in range(num_splits)]))
    return folds


def fit_classifiers(folds, builder, class_names, train, test, settings, cache_dir):
    """Trains (or loads from the cache) each fold's classifier on its half of the train split only.

    Args:
        folds: from plan_folds; their classifier is set.
        builder: the prepared TFDS builder (names the dataset in the classifiers' cache keys).
        class_names: label names, index i naming label i.
        train: (images [N, R, R, 3] uint8, labels [N] int) of the real train split.
        test: (images, labels) of the real test split (each classifier's test accuracy).
        settings: ClassifierSettings of the full-split classifier; the halves use half_settings().
        cache_dir: folder holding the cache folders classifier_half0/ and classifier_half1/.
    """
    images, labels = train
    labels = np.asarray(labels)
    for fold in folds:
        held_in = fold.train_indices
        fold.classifier = classifier_lib.load_or_train(builder, class_names, (images[held_in], labels[held_in]),
                                                       test, half_settings(settings),
                                                       os.path.join(cache_dir, HALF_CACHE_DIR.format(fold.index)))


def description(folds, train_labels, class_names, seed):
    """The protocol and every fold's set sizes, for a report.

    Args:
        folds: from plan_folds, with their classifiers (fit_classifiers).
        train_labels: [N] int labels of the real train split.
        class_names: label names, index i naming label i.
        seed: the seed the H1/H2 splits were drawn from (plan_folds).

    Returns:
        {"protocol", "halves_seed", "splits_seed", "num_splits", "folds": [per fold: its feature
        classifier's cache folder, train count and test accuracy, the reference count, and the sizes
        of H1 and H2, overall and per class]}.
    """
    train_labels = np.asarray(train_labels)

    def per_class(labels):
        counts = np.bincount(labels, minlength=len(class_names))
        return {name: int(counts[c]) for c, name in enumerate(class_names)}

    described = []
    for fold in folds:
        reference_labels = train_labels[fold.reference_indices]
        h1, h2 = fold.splits[0]  # stratified: every split of a fold has the same sizes
        described.append({
            "feature_classifier": HALF_CACHE_DIR.format(fold.index),
            "feature_classifier_train_count": len(fold.train_indices),
            "feature_classifier_test_accuracy": fold.classifier.info.get("test_accuracy"),
            "reference_count": len(fold.reference_indices),
            "h1_count": len(h1), "h2_count": len(h2),
            "h1_counts": per_class(reference_labels[h1]), "h2_counts": per_class(reference_labels[h2]),
        })
    return {"protocol": PROTOCOL, "halves_seed": SPLIT_SEED, "splits_seed": seed, "num_splits": len(folds[0].splits),
            "folds": described}


def generated_counts(folds, train_labels, num_classes):
    """[K]: generated images of each class the distances need (the largest H1 part of that class)."""
    train_labels = np.asarray(train_labels)
    counts = np.zeros(num_classes, int)
    for fold in folds:
        reference_labels = train_labels[fold.reference_indices]
        for h1, _ in fold.splits:
            counts = np.maximum(counts, np.bincount(reference_labels[h1], minlength=num_classes))
    return counts


@dataclasses.dataclass
class FoldFeatures:
    """One fold in one feature space.

    Attributes:
        reference: [M, D] features of the held-out half.
        labels: [M] their labels.
        splits: the fold's [(h1, h2)] positions in reference.
        generated: per class c, [m_c, D] features of its first generated images, m_c ≥ |h1 ∩ c|.
    """
    reference: np.ndarray
    labels: np.ndarray
    splits: list
    generated: list


def _one_split(space, h1, h2, seed):
    """{None or class: (generated values, floor values)} for one H1/H2 split."""
    h1_labels, h2_labels = space.labels[h1], space.labels[h2]
    h1_features, h2_features = space.reference[h1], space.reference[h2]                # [|H1|, D], [|H2|, D]
    counts = np.bincount(h1_labels, minlength=len(space.generated))
    for label, count in enumerate(counts):
        if len(space.generated[label]) < count:
            raise ValueError(f"class {label} needs {count} generated images, got {len(space.generated[label])}")
    generated = np.concatenate([space.generated[label][:count] for label, count in enumerate(counts)])
    figures = {None: (metrics.compute(h2_features, generated, seed=seed),
                      metrics.compute(h2_features, h1_features, seed=seed))}
    for label, count in enumerate(counts):
        reference = h2_features[h2_labels == label]
        figures[label] = (metrics.compute(reference, space.generated[label][:count], seed=seed),
                          metrics.compute(reference, h1_features[h1_labels == label], seed=seed))
    return figures


def _mean_present_everywhere(dicts):
    """Mean of each key present in every dict."""
    names = set(dicts[0]).intersection(*dicts[1:])
    return {name: float(np.mean([d[name] for d in dicts])) for name in sorted(names)}


def distances_with_floor(spaces, seed=0):
    """The registered metrics (cgan.evaluation.metrics.compute) of generated vs real and real vs real, averaged.

    Args:
        spaces: FoldFeatures of every fold (in one feature space).
        seed: seed of the metrics' random subsets.

    Returns:
        {None: overall, label: per class}, each {"generated": {metric: value}, "floor": {metric: value}}
        with metric names as cgan.evaluation.metrics.compute gives them ("fd", "kid", "precision", "recall", …;
        "kid_std" is left out: the spread over splits, not over KID's subsets, is what varies here).
    """
    collected = {}
    for space in spaces:
        for h1, h2 in space.splits:
            for key, (generated, floor) in _one_split(space, h1, h2, seed).items():
                collected.setdefault(key, ([], []))
                collected[key][0].append(generated)
                collected[key][1].append(floor)
    figures = {}
    for key, (generated, floor) in collected.items():
        figures[key] = {"generated": _mean_present_everywhere(generated), "floor": _mean_present_everywhere(floor)}
        for values in figures[key].values():
            values.pop("kid_std", None)
    return figures
