"""Writes generated images of one class.

    python sample.py --label=3                          # 16 melanoma images from runs/demo
    python sample.py --label=melanoma --num=64 --seed=100 --out_dir=out
    python sample.py --model=path/generator.keras --label="basal cell carcinoma"

Image i comes from seed --seed + i, so the same seed always gives the same image.
"""

import os
import sys

from absl import app, flags

from cgan.errors import UserError

flags.DEFINE_string("label", None, "Class to generate: an index (3) or a name (melanoma).")
flags.DEFINE_string("workdir", "runs/demo", "Run directory holding generator.keras (ignored with --model).")
flags.DEFINE_string("model", None, "Path of an exported generator .keras file (its .json beside it).")
flags.DEFINE_integer("num", 16, "Number of images.", lower_bound=1, upper_bound=10_000)
flags.DEFINE_integer("seed", 0, "First seed; image i uses seed + i.", lower_bound=0)
flags.DEFINE_string("out_dir", "samples", "Folder for the PNGs.")
flags.mark_flag_as_required("label")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    from cgan import export, sampling  # imports TensorFlow; after flag parsing so errors come fast
    model_path = FLAGS.model or os.path.join(FLAGS.workdir, export.GENERATOR_FILE)
    try:
        generator, info = export.load_generator(model_path)
        label = sampling.resolve_label(FLAGS.label, info["class_names"])
        paths = sampling.write_samples(generator, info, label, range(FLAGS.seed, FLAGS.seed + FLAGS.num),
                                       FLAGS.out_dir)
    except UserError as e:
        print(f"sample.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"Wrote {len(paths) - 1} images of class {label} ({info['class_names'][label]}) and a grid: "
          f"{paths[-1]}")


if __name__ == "__main__":
    app.run(main)
