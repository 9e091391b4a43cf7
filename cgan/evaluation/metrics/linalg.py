"""The matrix products and symmetric eigenvalue problems of the metrics, on TensorFlow's kernels.

    product = linalg.matmul(a, b, transpose_b=True)      # [N, D], [M, D] -> [N, M] float64 numpy
    eigenvalues = linalg.eigvalsh(symmetric)             # [D, D] -> [D], ascending

Why not numpy's `@` and `numpy.linalg`: numpy's OpenBLAS runs its own pool of busy-waiting threads,
and on a CPU shared with TensorFlow (the trainer's `--eval_every`) or with other processes those
threads fight over the cores and an eigenvalue problem can take orders of magnitude longer.
TensorFlow's kernels share its one thread pool. Everything stays float64.
"""

import numpy as np
import tensorflow as tf


def matmul(a, b, transpose_a=False, transpose_b=False):
    """a @ b (either transposed) as a float64 numpy array."""
    return tf.linalg.matmul(tf.constant(a, tf.float64), tf.constant(b, tf.float64),
                            transpose_a=transpose_a, transpose_b=transpose_b).numpy()


def eigvalsh(symmetric):
    """Eigenvalues of a symmetric matrix, ascending, float64 numpy."""
    return tf.linalg.eigvalsh(tf.constant(symmetric, tf.float64)).numpy()


def eigh(symmetric):
    """(eigenvalues [D], eigenvectors [D, D] as columns) of a symmetric matrix, float64 numpy."""
    eigenvalues, eigenvectors = tf.linalg.eigh(tf.constant(symmetric, tf.float64))
    return eigenvalues.numpy(), eigenvectors.numpy()
