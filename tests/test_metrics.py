"""The metrics on feature arrays with known answers: Fréchet distance, KID, precision/recall, registry,
the cross-fitted references with their floors, GAN-test."""

import json

import numpy as np
import pytest

from cgan.evaluation import metrics
from cgan.evaluation.metrics import cas, classifier, coverage, cross_fit, frechet, kid, precision_recall, structure


def gaussian(rng, n, dim, shift=0.0, scale=1.0):
    return rng.normal(shift, scale, (n, dim))


@pytest.mark.parametrize("n,dim", [(500, 16), (30, 64)])  # the [D, D] and the low-rank [N, N] routes
def test_fd_of_a_set_with_itself_is_zero(n, dim):
    features = gaussian(np.random.default_rng(0), n, dim)
    assert abs(frechet.frechet_distance(features, features)) < 1e-6 * dim


def test_fd_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(1)
    dim = 6
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    var1, var2 = rng.uniform(0.1, 3.0, dim), rng.uniform(0.1, 3.0, dim)
    # Diagonal covariances commute, so (Σ1 Σ2)^½ is diagonal with entries sqrt(v1 v2).
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert frechet.frechet_distance_from_statistics(mu1, np.diag(var1), mu2, np.diag(var2)) == \
        pytest.approx(expected, rel=1e-10)
    # The same Gaussians in a rotated basis: the distance is invariant.
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    sigma1, sigma2 = rotation @ np.diag(var1) @ rotation.T, rotation @ np.diag(var2) @ rotation.T
    rotated = frechet.frechet_distance_from_statistics(rotation @ mu1, sigma1, rotation @ mu2, sigma2)
    assert rotated == pytest.approx(expected, rel=1e-8)


def test_fd_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(2)
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 1.0])
    real = rng.normal(0.0, np.sqrt(var1), (200_000, 3))
    generated = rng.normal(0.5, np.sqrt(var2), (200_000, 3))
    expected = 3 * 0.25 + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert frechet.frechet_distance(real, generated) == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("n1,n2", [(20, 35), (35, 20), (80, 90)])
def test_fd_routes_agree(n1, n2):
    rng = np.random.default_rng(3)
    features1, features2 = gaussian(rng, n1, 50), gaussian(rng, n2, 50, shift=0.3, scale=1.5)
    direct = frechet.frechet_distance_from_statistics(*frechet.statistics(features1),
                                                      *frechet.statistics(features2))
    # rel 1e-6: with N < D the [D, D] route takes square roots of round-off-sized eigenvalues.
    assert frechet.frechet_distance(features1, features2) == pytest.approx(direct, rel=1e-6)


def test_polynomial_kernel():
    x, y = np.array([[1.0, 2.0]]), np.array([[3.0, -1.0], [0.0, 0.0]])
    np.testing.assert_allclose(kid.polynomial_kernel(x, y), [[(1 / 2 + 1) ** 3, 1.0]])


def test_mmd_estimator_is_the_unbiased_one():
    rng = np.random.default_rng(4)
    x, y = gaussian(rng, 5, 3), gaussian(rng, 7, 3)
    kernel = kid.polynomial_kernel
    expected = (sum(kernel(x[i:i + 1], x[j:j + 1])[0, 0] for i in range(5) for j in range(5) if i != j) / 20
                + sum(kernel(y[i:i + 1], y[j:j + 1])[0, 0] for i in range(7) for j in range(7) if i != j) / 42
                - 2 * kernel(x, y).mean())
    assert kid.mmd2_unbiased(kernel(x, x), kernel(y, y), kernel(x, y)) == pytest.approx(expected)


def test_kid_is_near_zero_for_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(5)
    real, same = gaussian(rng, 600, 32), gaussian(rng, 600, 32)
    shifted = gaussian(rng, 600, 32, shift=0.5)
    same_mean, same_std = kid.kernel_distance(real, same, num_subsets=20, max_subset_size=200)
    shifted_mean, _ = kid.kernel_distance(real, shifted, num_subsets=20, max_subset_size=200)
    assert shifted_mean > 0.05
    assert abs(same_mean) < 0.02 * shifted_mean
    assert same_std > 0  # subsets of 200 out of 600 differ


def test_kid_is_reproducible_and_whole_set_subsets_have_no_spread():
    rng = np.random.default_rng(6)
    real, generated = gaussian(rng, 40, 8), gaussian(rng, 30, 8, shift=1.0)
    assert kid.kernel_distance(real, generated, seed=3) == kid.kernel_distance(real, generated, seed=3)
    _, std = kid.kernel_distance(real[:30], generated)  # subset size = both set sizes: one subset
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_from_whole_kernels_equals_kid_from_per_subset_kernels(monkeypatch):
    rng = np.random.default_rng(10)
    real, generated = gaussian(rng, 50, 6), gaussian(rng, 40, 6, shift=0.2)
    from_whole = kid.kernel_distance(real, generated, num_subsets=7, max_subset_size=25, seed=2)
    monkeypatch.setattr(kid, "_MAX_GRAM_ROWS", 10)  # forces the per-subset route
    per_subset = kid.kernel_distance(real, generated, num_subsets=7, max_subset_size=25, seed=2)
    np.testing.assert_allclose(from_whole, per_subset, rtol=1e-9)


def test_precision_and_recall():
    rng = np.random.default_rng(7)
    real = gaussian(rng, 300, 4)
    assert precision_recall.precision_recall(real, real) == (1.0, 1.0)
    far = gaussian(rng, 300, 4, shift=100.0)
    assert precision_recall.precision_recall(real, far) == (0.0, 0.0)
    # Mode collapse: realistic but not varied.
    collapsed = real[:1] + 0.01 * gaussian(rng, 300, 4)
    precision, recall = precision_recall.precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.1


def test_precision_recall_subsamples_the_larger_set():
    rng = np.random.default_rng(8)
    real, generated = gaussian(rng, 1000, 3), gaussian(rng, 100, 3)
    precision, recall = precision_recall.precision_recall(real, generated, seed=1)
    assert 0.5 < precision <= 1.0 and 0.5 < recall <= 1.0


def test_registry_computes_all_and_skips_metrics_needing_more_samples():
    rng = np.random.default_rng(9)
    values = metrics.compute(gaussian(rng, 50, 5), gaussian(rng, 60, 5), seed=0)
    assert set(values) == {"fd", "kid", "kid_std", "precision", "recall", "density", "coverage"}
    five = metrics.compute(gaussian(rng, 5, 5), gaussian(rng, 60, 5))   # 5 real rows: no k=5 neighbours
    assert set(five) == {"fd", "kid", "kid_std", "precision", "recall"}
    small = metrics.compute(gaussian(rng, 3, 5), gaussian(rng, 60, 5))  # 3 real rows: no k=3 neighbours
    assert set(small) == {"fd", "kid", "kid_std"}


def test_stratified_halves_split_every_class_and_balance_the_totals():
    labels = np.array([0] * 7 + [1] * 4 + [2] * 3 + [3] * 1)
    first, second = cross_fit.stratified_halves(labels, np.random.default_rng(0))
    assert set(first.tolist()).isdisjoint(second.tolist())
    assert sorted(first.tolist() + second.tolist()) == list(range(len(labels)))
    np.testing.assert_array_equal(np.abs(np.bincount(labels[first], minlength=4)
                                         - np.bincount(labels[second], minlength=4)), [1, 0, 1, 1])
    assert abs(len(first) - len(second)) <= 1
    again = cross_fit.stratified_halves(labels, np.random.default_rng(0))
    np.testing.assert_array_equal(again[0], first)
    other = cross_fit.stratified_halves(labels, np.random.default_rng(1))
    assert not np.array_equal(other[0], first)  # the order within classes comes from the generator


def test_plan_folds_keep_every_reference_out_of_its_classifiers_half():
    labels = np.repeat(np.arange(3), [10, 7, 12])
    folds = cross_fit.plan_folds(labels, seed=3, num_splits=2)
    assert [f.index for f in folds] == [0, 1]
    np.testing.assert_array_equal(folds[0].train_indices, folds[1].reference_indices)
    np.testing.assert_array_equal(folds[1].train_indices, folds[0].reference_indices)
    for fold in folds:
        for h1, h2 in fold.split_train_indices():
            assert set(h1.tolist()).isdisjoint(fold.train_indices.tolist())
            assert set(h2.tolist()).isdisjoint(fold.train_indices.tolist())
    assert not np.array_equal(folds[0].splits[0][0], folds[0].splits[1][0])  # the splits differ
    counts = cross_fit.generated_counts(folds, labels, 3)
    expected = np.max([np.bincount(labels[f.reference_indices][h1], minlength=3) for f in folds for h1, _ in f.splits],
                      axis=0)
    np.testing.assert_array_equal(counts, expected)


def _space(rng, shift=0.0, per_class=(12, 8), dim=4, num_splits=2):
    labels = np.repeat(np.arange(len(per_class)), per_class)
    reference = rng.normal(0, 1, (len(labels), dim)) + labels[:, None]
    splits = [cross_fit.stratified_halves(labels, rng) for _ in range(num_splits)]
    generated = [rng.normal(shift, 1, (count, dim)) + label for label, count in enumerate(per_class)]
    return cross_fit.FoldFeatures(reference, labels, splits, generated)


def test_the_floor_uses_the_generated_figures_sizes_class_mix_and_reference(monkeypatch):
    calls = []
    real_compute = metrics.compute

    def recording(real, generated, seed=0, names=None):
        calls.append((real, generated))
        return real_compute(real, generated, seed=seed, names=names)

    monkeypatch.setattr(metrics, "compute", recording)
    space = _space(np.random.default_rng(0))
    cross_fit.distances_with_floor([space], seed=0)
    assert len(calls) == 2 * 2 * 3  # splits × (generated, floor) × (overall + 2 classes)
    for (reference, generated), (floor_reference, held_in) in zip(calls[::2], calls[1::2]):
        assert reference is floor_reference                 # the same reference H2
        assert generated.shape == held_in.shape             # the same sample size
    h1, _ = space.splits[0]
    overall_generated = calls[0][1]
    expected = np.concatenate([space.generated[c][:n] for c, n in enumerate(np.bincount(space.labels[h1]))])
    np.testing.assert_array_equal(overall_generated, expected)  # G is class-mixed like H1


def test_generated_like_the_real_data_scores_its_floor_and_a_shift_scores_worse():
    rng = np.random.default_rng(1)
    same = cross_fit.distances_with_floor([_space(rng, per_class=(200, 200), num_splits=3)])
    shifted = cross_fit.distances_with_floor([_space(rng, shift=2.0, per_class=(200, 200), num_splits=3)])
    assert same[None]["generated"]["fd"] == pytest.approx(same[None]["floor"]["fd"], rel=0.5)
    assert shifted[None]["generated"]["fd"] > 10 * shifted[None]["floor"]["fd"]
    assert shifted[1]["generated"]["recall"] < 0.2 < shifted[1]["floor"]["recall"]
    assert set(same) == {None, 0, 1} and "kid_std" not in same[None]["generated"]


def test_generated_sets_smaller_than_h1_are_a_bug():
    space = _space(np.random.default_rng(2))
    space.generated[1] = space.generated[1][:1]
    with pytest.raises(ValueError, match="class 1 needs"):
        cross_fit.distances_with_floor([space])


class _ColourClassifier:
    """Predicts the label from the red channel: 0 below 128, 1 above."""

    def accuracy_per_class(self, images, labels, class_names):
        predictions = (images[..., 0].mean(axis=(1, 2)) >= 128).astype(int)
        return classifier.accuracy_per_class(predictions, labels, class_names)


def test_gan_test_is_the_mean_over_classes_of_a_real_classifiers_accuracy():
    images = np.zeros((6, 2, 2, 3), np.uint8)
    images[[3, 4], ..., 0] = 255       # class 1: 2 of its 4 images look like class 1
    labels = np.array([0, 0, 1, 1, 1, 1])
    overall, per_class = cas.gan_test(_ColourClassifier(), images, labels, ("dark", "red"))
    assert per_class == {"dark": 1.0, "red": 0.5} and overall == 0.75


def test_accuracy_per_class_and_the_data_digest():
    assert classifier.accuracy_per_class([0, 1, 1, 2], [0, 1, 2, 2], ("a", "b", "c", "d")) == \
        {"a": 1.0, "b": 1.0, "c": 0.5}
    images, labels = np.zeros((3, 2, 2, 3), np.uint8), np.array([0, 1, 2])
    digest = classifier.data_digest(images, labels)
    assert digest == classifier.data_digest(images.copy(), labels.copy())
    assert digest != classifier.data_digest(images, labels[::-1])
    assert digest != classifier.data_digest(images[:2], labels[:2])


def test_train_classifier_trains_the_model_it_is_given_by_the_same_recipe():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8), np.arange(16) % 2
    settings = classifier.ClassifierSettings(epochs=1, batch_size=8, flips="none")
    given = classifier.build_classifier(16, 2, settings)
    untrained = given.get_weights()
    trained = classifier.train_classifier(images, labels, 2, settings, model=given)
    assert trained is given
    assert not all(np.array_equal(a, b) for a, b in zip(untrained, trained.get_weights()))
    built = classifier.train_classifier(images, labels, 2, settings)     # builds the same network itself
    for a, b in zip(built.get_weights(), trained.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_flips_are_chosen_by_validation_and_cached(tmp_path):
    """A mark on the left means class 0, on the right class 1: horizontal flips would destroy the label."""
    rng = np.random.RandomState(0)
    images = rng.randint(0, 40, (80, 16, 16, 3)).astype(np.uint8)
    labels = np.arange(80) % 2
    for image, label in zip(images, labels):
        image[4:12, 1:5] = 255 if label == 0 else 0
        image[4:12, 11:15] = 255 if label == 1 else 0
    settings = classifier.ClassifierSettings(epochs=8, batch_size=16)
    chosen = classifier.resolve_flips(settings, images, labels, 2, str(tmp_path))
    assert chosen.flips == "none" and chosen.epochs == 8
    stored = json.load(open(tmp_path / classifier.FLIPS_FILE))
    assert stored["flips"] == "none" and set(stored["validation_accuracy"]) == set(classifier.FLIPS)
    assert stored["validation_accuracy"]["none"] > stored["validation_accuracy"]["horizontal"]
    # The choice is reused for the same images and recipe, and other settings pass through unchanged.
    assert classifier.resolve_flips(settings, images, labels, 2, str(tmp_path)).flips == "none"
    explicit = classifier.ClassifierSettings(flips="horizontal")
    assert classifier.resolve_flips(explicit, images, labels, 2, str(tmp_path / "other")) is explicit
    with pytest.raises(ValueError, match="resolve 'auto'"):
        classifier.build_classifier(16, 2, settings)


def test_validation_split_is_stratified_and_disjoint():
    labels = np.array([0] * 20 + [1] * 7 + [2] * 1)
    fit, held_out = classifier.validation_split(labels)
    assert set(fit).isdisjoint(held_out) and len(fit) + len(held_out) == len(labels)
    assert [int(np.sum(labels[held_out] == c)) for c in range(3)] == [3, 2, 0]


def test_coverage_and_density_on_known_point_sets():
    real = np.arange(10, dtype=float)[:, None]                       # balls of radius 1 (k = 1)
    assert coverage.density_coverage(real, real, k=1) == pytest.approx((2.8, 1.0))  # each point in 3 balls, the ends in 2
    density, covered = coverage.density_coverage(real, np.zeros((1, 1)), k=1)   # one point at 0: balls of 0 and 1
    assert (density, covered) == (pytest.approx(2.0), pytest.approx(0.2))
    density, covered = coverage.density_coverage(real, np.full((5, 1), 100.0), k=1)
    assert (density, covered) == (0.0, 0.0)


def test_coverage_is_high_for_the_same_distribution_and_low_for_one_point_repeated():
    rng = np.random.default_rng(0)
    real, same = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    assert coverage.density_coverage(real, same)[1] > 0.9
    assert coverage.density_coverage(real, np.repeat(same[:1], 200, axis=0))[1] < 0.05
    with pytest.raises(ValueError, match="needs more than 5 real"):
        coverage.density_coverage(real[:5], same)


def _lesions(count, rng, side=64):
    """Dark discs of random place and size on skin of random tone: [count, side, side, 3] uint8."""
    yy, xx = np.mgrid[:side, :side]
    pictures = np.empty((count, side, side, 3), np.uint8)
    for i in range(count):
        cx, cy, radius = rng.uniform(16, 48), rng.uniform(16, 48), rng.uniform(6, 16)
        inside = ((xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2)[..., None]
        colour = np.where(inside, rng.uniform(30, 120, 3), rng.uniform(150, 230, 3))
        pictures[i] = np.clip(colour + rng.normal(0, 6, (side, side, 3)), 0, 255)
    return pictures


def test_structure_diversity_is_zero_for_a_repeat_and_for_one_image_in_many_colours():
    rng = np.random.default_rng(0)
    real, other_real = _lesions(60, rng), _lesions(60, rng)
    real_diversity = structure.diversity(structure.descriptors(real))
    assert structure.diversity(structure.descriptors(other_real)) / real_diversity == pytest.approx(1.0, abs=0.15)
    assert structure.diversity(structure.descriptors(np.repeat(real[:1], 8, axis=0))) < 1e-6
    recoloured = []
    for _ in range(8):   # brightness, contrast, tint and channel mixing: a global affine colour map
        mix = np.diag(rng.uniform(0.5, 1.2, 3)) + rng.uniform(-0.15, 0.15, (3, 3))
        recoloured.append(np.clip(real[0].astype(float) @ mix.T + rng.uniform(-20, 40, 3), 0, 255).astype(np.uint8))
    recoloured = np.stack(recoloured)
    pixel_spread = np.sqrt(np.mean((recoloured[:, None].astype(float) - recoloured[None]) ** 2))
    real_pixel_spread = np.sqrt(np.mean((real[:8, None].astype(float) - real[None, :8]) ** 2))
    assert pixel_spread > real_pixel_spread            # pixel distances call the colours more varied
    assert structure.diversity(structure.descriptors(recoloured)) < 0.2 * real_diversity


def test_structure_descriptors_ignore_an_affine_recolouring_and_see_a_moved_lesion():
    rng = np.random.default_rng(1)
    picture = _lesions(1, rng)[0].astype(float)
    mix = np.array([[0.8, 0.1, 0.0], [0.05, 0.7, 0.1], [0.0, 0.2, 0.6]])
    recoloured = np.round(picture @ mix.T + [20, 10, 30]).astype(np.uint8)       # stays within 0 … 255
    maps = structure.descriptors(np.stack([picture.astype(np.uint8), recoloured, np.roll(picture, 12, axis=1)
                                           .astype(np.uint8)]))                   # [3, 256]
    assert maps.shape == (3, structure.SIZE ** 2)
    assert np.sqrt(np.mean((maps[0] - maps[1]) ** 2)) < 0.05 * np.sqrt(np.mean((maps[0] - maps[2]) ** 2))
    with pytest.raises(ValueError, match="cannot be pooled"):
        structure.descriptors(np.zeros((2, 20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="2 or more"):
        structure.diversity(maps[:1])
