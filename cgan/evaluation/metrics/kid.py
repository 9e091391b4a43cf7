"""Kernel distance (KID when the features are Inception's): unbiased MMD² with a cubic kernel.

    mean, std = kid.kernel_distance(real_features, generated_features, seed=0)   # [N1, D], [N2, D]

As in Bińkowski et al. 2018 ("Demystifying MMD GANs"): the kernel is k(x, y) = (x·y / D + 1)³, and
the unbiased estimator of MMD² is averaged over `num_subsets` random subsets of `subset_size` rows of
each set (drawn without replacement; size min(1000, N1, N2)); the report gives the mean and the
standard deviation over subsets. Unlike the Fréchet distance its expectation does not depend on the
sample count, so it stays meaningful for the ~100-image per-class sets; it can be slightly negative
when the two sets come from one distribution. When a subset is a whole set, every subset is the
same and the std is 0.

Speed: the three kernel matrices over the whole sets are computed once ([N1, N1], [N2, N2],
[N1, N2]) and every subset's sums come from them by one product with 0/1 indicator columns, a
fraction of the work of 100 subsets computed separately. Above `_MAX_GRAM_ROWS` rows the kernels are
computed per subset to bound memory.
"""

import numpy as np

from cgan.evaluation.metrics import linalg

MIN_SAMPLES = 2           # the unbiased estimator averages over pairs of distinct rows
NUM_SUBSETS = 100
MAX_SUBSET_SIZE = 1000
_MAX_GRAM_ROWS = 8000     # an [8000, 8000] float64 kernel matrix is 512 MB


def polynomial_kernel(x, y):
    """(x·y / D + 1)³ for [N, D] and [M, D] -> [N, M] float64."""
    return (linalg.matmul(x, y, transpose_b=True) / np.shape(x)[1] + 1.0) ** 3


def mmd2_unbiased(k_xx, k_yy, k_xy):
    """Unbiased MMD² from kernel matrices [m, m], [n, n], [m, n] (diagonals of k_xx, k_yy excluded)."""
    m, n = len(k_xx), len(k_yy)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_distance(features1, features2, num_subsets=NUM_SUBSETS, max_subset_size=MAX_SUBSET_SIZE, seed=0):
    """Mean and std over subsets of the unbiased polynomial-kernel MMD².

    Args:
        features1: [N1, D] features, N1 ≥ 2.
        features2: [N2, D] features, N2 ≥ 2.
        num_subsets: random subsets to average over.
        max_subset_size: rows per subset from each set, capped by N1 and N2.
        seed: seed of the subset draws (same seed and inputs, same result).

    Returns:
        (mean, std) floats.
    """
    features1 = np.asarray(features1, np.float64)
    features2 = np.asarray(features2, np.float64)
    n1, n2 = len(features1), len(features2)
    if min(n1, n2) < MIN_SAMPLES:
        raise ValueError(f"the kernel distance needs {MIN_SAMPLES} or more samples per set, got {n1} and {n2}")
    size = min(max_subset_size, n1, n2)
    rng = np.random.default_rng(seed)
    subsets = [(rng.choice(n1, size, replace=False), rng.choice(n2, size, replace=False))
               for _ in range(num_subsets)]
    if max(n1, n2) > _MAX_GRAM_ROWS:
        values = []
        for rows1, rows2 in subsets:
            x, y = features1[rows1], features2[rows2]
            values.append(mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)))
    else:
        # Sums over a subset's block of a kernel matrix are wᵀ K v with 0/1 indicator vectors w, v:
        # one matrix product per kernel serves all subsets.
        select1 = np.zeros((n1, num_subsets))                              # [N1, S]
        select2 = np.zeros((n2, num_subsets))                              # [N2, S]
        for s, (rows1, rows2) in enumerate(subsets):
            select1[rows1, s], select2[rows2, s] = 1.0, 1.0
        k11 = polynomial_kernel(features1, features1)                      # [N1, N1]
        k22 = polynomial_kernel(features2, features2)                      # [N2, N2]
        k12 = polynomial_kernel(features1, features2)                      # [N1, N2]
        pairs = size * (size - 1)
        within1 = np.sum(select1 * (linalg.matmul(k11, select1) - np.diag(k11)[:, None]), 0) / pairs  # [S]
        within2 = np.sum(select2 * (linalg.matmul(k22, select2) - np.diag(k22)[:, None]), 0) / pairs
        between = np.sum(select1 * linalg.matmul(k12, select2), 0) / (size * size)
        values = within1 + within2 - 2.0 * between
    return float(np.mean(values)), float(np.std(values))


def metric(real, generated, seed=0):
    """Registry entry: {"kid": mean, "kid_std": std}."""
    mean, std = kernel_distance(real, generated, seed=seed)
    return {"kid": mean, "kid_std": std}
