"""Where every random number comes from: seeds derived from a command's `--seed` alone.

    seeding.set_global_seed(config.seed)    # right before a draw that only obeys global state

A run or a report must not depend on what else ran before in the process: preparing a dataset
(TFDS draws from Python's `random`), an import, a cache that was warm or cold. So each draw takes
its randomness from its own seed, never from a global stream that other work may have moved on:
stateless or explicitly seeded ops wherever a library offers them (the table in BUILD_NOTES.md,
"Reproducibility", lists every draw). Two draws only obey the global state: the initialisers of
Keras layers built without a seed (the GAN's networks, keras.applications), and the
`random`/`np.random`/`tf.random` streams of code we do not own. For those, `set_global_seed` is
called right before the draw it controls, never once at start-up.
"""

import keras


def set_global_seed(seed):
    """Resets Python's, NumPy's, TensorFlow's and Keras' global random state to `seed`.

    Call it right before a draw that takes no seed of its own (a model whose layers are built with
    unseeded initialisers), so that the draw depends on `seed` and on nothing that ran before.
    """
    keras.utils.set_random_seed(int(seed))

