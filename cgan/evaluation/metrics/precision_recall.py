"""Improved precision and recall (Kynkäänniemi et al. 2019): k-NN manifolds in a feature space.

    precision, recall = precision_recall.precision_recall(real_features, generated_features, k=3)

Each set's manifold is the union of balls around its points, a ball's radius being the distance to
the point's k-th nearest neighbour in its own set. Precision = share of generated points inside the
real manifold (are the images realistic?); recall = share of real points inside the generated
manifold (is the variety covered?). Radii shrink as a set grows, so, as in the paper, the larger set
is subsampled (fixed seed) to the size of the smaller one.
"""

import numpy as np

from cgan.evaluation.metrics import linalg

K = 3
MIN_SAMPLES = K + 1  # k neighbours besides the point itself
ROWS_PER_BLOCK = 1024  # bounds the [block, N] distance matrices in memory


def squared_distances(x, y):
    """[N, D], [M, D] -> [N, M] squared Euclidean distances, float64, ≥ 0."""
    squared = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * linalg.matmul(x, y, transpose_b=True)
    return np.maximum(squared, 0.0)


def knn_radii(points, k):
    """Squared distance from each of [N, D] points to its k-th nearest other point: [N]."""
    radii = np.empty(len(points))
    for start in range(0, len(points), ROWS_PER_BLOCK):
        block = squared_distances(points[start:start + ROWS_PER_BLOCK], points)
        block[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not its own neighbour
        radii[start:start + len(block)] = np.partition(block, k - 1, axis=1)[:, k - 1]
    return radii


def _coverage(manifold, radii, queries):
    """Share of [M, D] queries within radius of some point of the [N, D] manifold."""
    inside = 0
    for start in range(0, len(queries), ROWS_PER_BLOCK):
        block = squared_distances(queries[start:start + ROWS_PER_BLOCK], manifold)   # [b, N]
        inside += int((block <= radii[None, :]).any(axis=1).sum())
    return inside / len(queries)


def precision_recall(real, generated, k=K, seed=0):
    """Precision and recall of generated features against real ones.

    Args:
        real: [N1, D] features.
        generated: [N2, D] features; min(N1, N2) > k.
        k: neighbourhood size (3 in the paper).
        seed: seed of the subsampling of the larger set.

    Returns:
        (precision, recall) floats in [0, 1].
    """
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    size = min(len(real), len(generated))
    if size <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set, got "
                         f"{len(real)} and {len(generated)}")
    rng = np.random.default_rng(seed)
    if len(real) > size:
        real = real[np.sort(rng.choice(len(real), size, replace=False))]
    if len(generated) > size:
        generated = generated[np.sort(rng.choice(len(generated), size, replace=False))]
    precision = _coverage(real, knn_radii(real, k), generated)
    recall = _coverage(generated, knn_radii(generated, k), real)
    return precision, recall


def metric(real, generated, seed=0):
    """Registry entry: {"precision": float, "recall": float}."""
    precision, recall = precision_recall(real, generated, seed=seed)
    return {"precision": precision, "recall": recall}
