"""Density and coverage (Naeem et al. 2020): k-NN balls around the real points only.

    density, coverage = coverage.density_coverage(real_features, generated_features, k=5)

A real point's ball reaches its k-th nearest real neighbour. Coverage = share of real points whose
ball holds at least one generated point: does the generator reach every part of the real set?
Density = number of (generated point, real ball holding it) pairs ÷ (k · generated points): about 1
for generated points spread like the real ones, above 1 where they crowd into dense real regions.
Unlike recall, whose balls grow around the generated points, one generated outlier cannot cover
anything, and the figure is stable at the 20–400 images of a class. Both sets are used whole; the
paper sizes the generated set like the real one, as the cross-fitted evaluation does.
"""

import numpy as np

from cgan.evaluation.metrics import precision_recall

K = 5
MIN_SAMPLES = K + 1  # k neighbours besides the point itself


def density_coverage(real, generated, k=K):
    """Density and coverage of generated features against real ones.

    Args:
        real: [N1, D] features, N1 > k.
        generated: [N2, D] features, N2 ≥ 1.
        k: neighbourhood size (5 in the paper).

    Returns:
        (density, coverage): density ≥ 0, coverage in [0, 1].
    """
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    if len(real) <= k or not len(generated):
        raise ValueError(f"density/coverage with k={k} needs more than {k} real and one generated sample, got "
                         f"{len(real)} and {len(generated)}")
    radii = precision_recall.knn_radii(real, k)                                      # [N1] squared
    covered = np.zeros(len(real), bool)
    inside = 0
    for start in range(0, len(generated), precision_recall.ROWS_PER_BLOCK):
        within = precision_recall.squared_distances(generated[start:start + precision_recall.ROWS_PER_BLOCK],
                                                    real) <= radii[None, :]           # [b, N1]
        inside += int(within.sum())
        covered |= within.any(axis=0)
    return inside / (k * len(generated)), float(covered.mean())


def metric(real, generated, seed=0):
    """Registry entry: {"density": float, "coverage": float}. `seed` is unused (no subsets)."""
    del seed
    density, coverage = density_coverage(real, generated)
    return {"density": density, "coverage": coverage}
