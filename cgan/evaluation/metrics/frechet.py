"""Fréchet distance between two sets of feature vectors (FID when the features are Inception's).

    fd = frechet.frechet_distance(real_features, generated_features)     # [N1, D], [N2, D] -> float
    fd = frechet.frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2)

FD = ‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½): the Fréchet (2-Wasserstein) distance between the
Gaussians fitted to each set (Heusel et al. 2017). It is biased upwards for small sets, so two values
are comparable only at the same sample counts.

The matrix square root, without scipy: only its trace is needed, and tr (Σ1 Σ2)^½ is the sum of the
square roots of the eigenvalues of Σ1 Σ2. That product is not symmetric, but symmetric positive
semi-definite matrices share its eigenvalues, and a symmetric eigensolver (`eigvalsh`; TensorFlow's,
see cgan.evaluation.metrics.linalg) finds those stably: real, clipped at 0 against round-off. A general square
root of the non-symmetric product (scipy.linalg.sqrtm) can return spurious imaginary parts.
- Both sets with D rows or more: Σ1^½ Σ2 Σ1^½ ([D, D]; Σ1^½ from an eigendecomposition of Σ1).
- Otherwise, as for every Inception set here (D = 2048): with R, G the centred rows of the sets
  (Σ1 = Rᵀ R / (N1 − 1), Σ2 = Gᵀ G / (N2 − 1)) and A = R Gᵀ ([N1, N2]), Σ1 Σ2 has the non-zero
  eigenvalues of A Aᵀ / ((N1 − 1)(N2 − 1)) (AB and BA share them), and so of the smaller Aᵀ A. No
  [D, D] matrix is formed: a per-class FID on ~100 images is a ~100 × 100 eigenvalue problem.
"""

import numpy as np

from cgan.evaluation.metrics import linalg

MIN_SAMPLES = 2  # a covariance needs two rows


def statistics(features):
    """Mean [D] and covariance [D, D] (float64, unbiased) of [N, D] features."""
    features = np.asarray(features, np.float64)
    mean = features.mean(axis=0)
    centred = features - mean                                              # [N, D]
    return mean, linalg.matmul(centred, centred, transpose_a=True) / (len(features) - 1)


def _sqrt_psd(matrix):
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    eigenvalues, eigenvectors = linalg.eigh(matrix)
    return linalg.matmul(eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None)), eigenvectors, transpose_b=True)


def _sum_sqrt_eigenvalues(symmetric):
    return float(np.sqrt(np.clip(linalg.eigvalsh(symmetric), 0.0, None)).sum())


def trace_sqrt_product(sigma1, sigma2):
    """tr (Σ1 Σ2)^½ for two [D, D] covariances, via the symmetric Σ1^½ Σ2 Σ1^½."""
    root1 = _sqrt_psd(sigma1)
    return _sum_sqrt_eigenvalues(linalg.matmul(linalg.matmul(root1, sigma2), root1))


def frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2):
    """FD between N(μ1, Σ1) and N(μ2, Σ2).

    Args:
        mu1, mu2: [D] means.
        sigma1, sigma2: [D, D] covariances.

    Returns:
        float, ≥ 0 up to round-off.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    diff = mu1 - mu2
    return float(np.sum(diff * diff) + np.trace(sigma1) + np.trace(sigma2)
                 - 2.0 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance(features1, features2):
    """FD between the Gaussians fitted to two feature sets.

    Args:
        features1: [N1, D] features, N1 ≥ 2.
        features2: [N2, D] features, N2 ≥ 2.

    Returns:
        float.
    """
    features1 = np.asarray(features1, np.float64)
    features2 = np.asarray(features2, np.float64)
    (n1, dim), n2 = features1.shape, len(features2)
    if min(n1, n2) < MIN_SAMPLES:
        raise ValueError(f"the Fréchet distance needs {MIN_SAMPLES} or more samples per set, got {n1} and {n2}")
    if min(n1, n2) >= dim:
        return frechet_distance_from_statistics(*statistics(features1), *statistics(features2))
    mu1, mu2 = features1.mean(axis=0), features2.mean(axis=0)
    centred1, centred2 = features1 - mu1, features2 - mu2                 # [N1, D], [N2, D]
    cross = linalg.matmul(centred1, centred2, transpose_b=True)            # [N1, N2]
    gram = linalg.matmul(cross, cross, transpose_a=n2 <= n1, transpose_b=n2 > n1)  # [M, M], M = min(N1, N2)
    trace_sqrt = _sum_sqrt_eigenvalues(gram) / np.sqrt((n1 - 1) * (n2 - 1))
    trace1 = np.sum(centred1 * centred1) / (n1 - 1)                        # tr Σ1
    trace2 = np.sum(centred2 * centred2) / (n2 - 1)
    diff = mu1 - mu2
    return float(np.sum(diff * diff) + trace1 + trace2 - 2.0 * trace_sqrt)


def metric(real, generated, seed=0):
    """Registry entry: {"fd": float}. `seed` is unused (the distance is deterministic)."""
    del seed
    return {"fd": frechet_distance(real, generated)}
