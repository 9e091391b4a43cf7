"""The images every timed loop trains on: the prepared training split, decoded into memory once.

    from benchmarks import training_data
    data = training_data.load(config)       # config: a BenchmarkConfig (dataset, data_dir, manual_dir)
    data.images, data.labels                # [N, R, R, 3] uint8, [N] int32 numpy
"""

import dataclasses

import numpy as np

from cgan.inputs import datasets, input_pipeline


@dataclasses.dataclass(frozen=True)
class TrainingData:
    images: np.ndarray          # [N, R, R, 3] uint8
    labels: np.ndarray          # [N] int32
    class_names: tuple
    name: str                   # the dataset's full TFDS name

    @property
    def resolution(self):
        return int(self.images.shape[1])


def load(config):
    """The prepared training split of config.dataset, decoded into memory as the trainer does.

    Args:
        config: a BenchmarkConfig.

    Returns:
        TrainingData.
    """
    builder = datasets.prepare(config.dataset, config.data_dir, config.manual_dir)
    images, labels = input_pipeline.load_split(builder, "train")
    return TrainingData(images, labels, tuple(datasets.class_names(builder)), builder.info.full_name)
