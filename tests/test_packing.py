"""PacGAN's packs in the training step: from the stream's adjacent rows to D's channel-stacked input."""

import numpy as np
import pytest
import tensorflow as tf

from cgan.training import step


@pytest.mark.parametrize("pack", [2, 4])
def test_the_stream_s_adjacent_packs_reach_d_whole_and_the_halves_pair_members_of_one_pack(pack):
    b = 4 * pack
    ids = np.arange(b)                                                   # pack p: stream rows p·k .. p·k + k − 1
    images = np.broadcast_to(ids[:, None, None, None], (b, 2, 2, 3)).astype("float32")
    blocks = step.packs_to_blocks(tf.constant(images), pack)
    stacked = step.stack_blocks(blocks, pack).numpy()                    # [b / k, 2, 2, 3k]
    assert stacked.shape == (b // pack, 2, 2, 3 * pack)
    np.testing.assert_array_equal(stacked[:, 0, 0, ::3], ids.reshape(-1, pack))   # each row of D: one whole pack
    labels = step.packs_to_blocks(tf.constant(ids // pack), pack).numpy()
    np.testing.assert_array_equal(labels[:b // 2], labels[b // 2:])     # rows i and i + b/2: the same pack
