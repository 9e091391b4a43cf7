"""Image-quality metrics on feature vectors, one module per metric, and the registry of them.

    from cgan.evaluation import metrics
    values = metrics.compute(real_features, generated_features, seed=0)     # [N1, D], [N2, D]
    # {"fd": 3.1, "kid": 0.0021, "kid_std": 0.0004, "precision": 0.74, "recall": 0.61, "density": ..., "coverage": ...}

Metrics (each `metric(real, generated, seed) -> dict[str, float]`):
- `frechet`: Fréchet distance of fitted Gaussians (FID on Inception features).
- `kid`: unbiased MMD² with the cubic polynomial kernel, mean and std over subsets (KID).
- `precision_recall`: k-NN manifold precision and recall, k = 3.
- `coverage`: density and coverage, k-NN balls around the real points only, k = 5.

Beside them: the feature extractors `inception` (Inception-v3 2048-D pool features at 299×299) and
`classifier` (a small CNN trained on real images and cached next to the dataset); `cross_fit` (the
distances against real images the feature classifier never saw, each with its real-vs-real floor);
`cas` (GAN-test and the Classification Accuracy Score); `structure` (a colour-blind image space and the
within-class diversity in it). `cgan.evaluation.evaluate` combines them with a generator.
"""

import contextlib

from cgan.evaluation.metrics import coverage, frechet, kid, precision_recall

# name -> (function, fewest samples per set it needs).
REGISTRY = {
    "fd": (frechet.metric, frechet.MIN_SAMPLES),
    "kid": (kid.metric, kid.MIN_SAMPLES),
    "precision_recall": (precision_recall.metric, precision_recall.MIN_SAMPLES),
    "density_coverage": (coverage.metric, coverage.MIN_SAMPLES),
}


def compute(real, generated, seed=0, names=None):
    """Runs registered metrics on two feature sets, skipping those the set sizes are too small for.

    Args:
        real: [N1, D] features of real images.
        generated: [N2, D] features of generated images.
        seed: seed of any random subsets.
        names: registry names to run; None runs all.

    Returns:
        dict of metric values, e.g. {"fd": ..., "kid": ..., "kid_std": ..., "precision": ..., "recall": ...,
        "density": ..., "coverage": ...};
        a metric whose minimum sample count is not met is absent.
    """
    values = {}
    for name in names or REGISTRY:
        function, min_samples = REGISTRY[name]
        if min(len(real), len(generated)) >= min_samples:
            values.update(function(real, generated, seed=seed))
    return values


@contextlib.contextmanager
def float32_policy():
    """Builds feature extractors in float32 under a mixed-precision run, so metrics do not depend on
    --precision (and a classifier cached by one run is the same model for every other)."""
    import keras
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
