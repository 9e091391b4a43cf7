"""Builds a config of isic_skin_cancer into TFRecords without training, and reports what it read.

    python -m data.isic_skin_cancer --config=real_64 --manual_dir=~/Downloads/isic --data_dir=~/tfds
    python -m data.isic_skin_cancer --config=synthetic_128

The same build as `tfds build data/isic_skin_cancer --config=...` (which, with tensorflow-datasets
4.9.10, also needs `pip install apache-beam mlcroissant` for the tfds command itself to start).
Uses the builder module alone; a bad source prints one `error: ...` line and exits with status 2.
"""

import sys

from absl import app, flags

from . import isic_skin_cancer_dataset_builder as isic

flags.DEFINE_string("config", "real_64", "Config to build, e.g. real_64, synthetic_128, folders_64.")
flags.DEFINE_string("data_dir", "", "TFDS data directory; empty = ~/tensorflow_datasets.")
flags.DEFINE_string("manual_dir", "", "Folder with Train/ and Test/ class folders (real_* and folders_*).")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    try:
        builder = isic.prepare(FLAGS.config, FLAGS.data_dir, FLAGS.manual_dir)
    except isic.DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    names = builder.info.features["label"].names  # known once prepared, for folders_* too
    print(f"{builder.info.full_name} in {builder.data_dir}")
    for split, info in sorted(builder.info.splits.items()):
        print(f"  {split}: {info.num_examples} images")
    print(f"  classes: {', '.join(f'{i}={name}' for i, name in enumerate(names))}")
    skipped = builder.info.metadata["skipped_files"] if "skipped_files" in builder.info.metadata else []
    print(f"  skipped files: {len(skipped)}")
    for entry in skipped:
        print(f"    {entry['path']}: {entry['reason']}")


if __name__ == "__main__":
    app.run(main)
