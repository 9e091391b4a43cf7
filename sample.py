"""Writes generated images of one class, or serves a page to generate them interactively.

    python sample.py --label=3                          # 16 melanoma images from runs/demo
    python sample.py --label=melanoma --num=64 --seed=100 --out_dir=out
    python sample.py --model=path/generator.keras --label="basal cell carcinoma" --truncation=0.7
    python sample.py --serve                            # the page at http://127.0.0.1:8000/

Image i comes from seed --seed + i, so the same seed always gives the same image.
"""

import os
import sys

from absl import app, flags

from cgan.errors import UserError

flags.DEFINE_string("label", None, "Class to generate: an index (3) or a name (melanoma). Required unless --serve.")
flags.DEFINE_string("workdir", "runs/demo", "Run directory holding generator.keras (ignored with --model).")
flags.DEFINE_string("model", None, "Path of an exported generator .keras file (its .json beside it).")
flags.DEFINE_integer("num", 16, "Number of images.", lower_bound=1, upper_bound=10_000)
flags.DEFINE_integer("seed", 0, "First seed; image i uses seed + i.", lower_bound=0)
flags.DEFINE_float("truncation", None, "Truncation threshold t in standard deviations (0.05 to 10): components "
                   "of the noise beyond ±t are redrawn; smaller = more typical images. Default: none.")
flags.DEFINE_string("out_dir", "samples", "Folder for the PNGs.")
flags.DEFINE_boolean("serve", False, "Serve a web page (and its API) to generate images instead of writing files.")
flags.DEFINE_string("host", "127.0.0.1", "Address to serve on with --serve (loopback: this machine only).")
flags.DEFINE_integer("port", 8000, "TCP port to serve on with --serve; 0 picks a free one.",
                     lower_bound=0, upper_bound=65535)

FLAGS = flags.FLAGS

_FILE_FLAGS = ("label", "num", "seed", "truncation", "out_dir")
_SERVE_FLAGS = ("host", "port")


def _check_mode():
    """The flags of one mode make no sense in the other: say so instead of ignoring them."""
    if FLAGS.serve:
        given = [f"--{name}" for name in _FILE_FLAGS if FLAGS[name].present]
        if given:
            raise UserError(f"{', '.join(given)} cannot be used with --serve: pick the class, seeds and "
                            f"truncation on the page")
        return
    given = [f"--{name}" for name in _SERVE_FLAGS if FLAGS[name].present]
    if given:
        raise UserError(f"{', '.join(given)} only applies with --serve: add --serve to serve the page")
    if FLAGS.label is None:
        raise UserError("--label is required: pass --label=3 or --label=melanoma (or --serve for the web page)")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    try:
        _check_mode()
        from cgan import export, sampling  # imports TensorFlow; after flag checks so errors come fast
        model_path = FLAGS.model or os.path.join(FLAGS.workdir, export.GENERATOR_FILE)
        if FLAGS.serve:
            from cgan import serve
            serve.serve(model_path, FLAGS.host, FLAGS.port)
            return
        truncation = sampling.check_truncation(FLAGS.truncation)
        generator, info = export.load_generator(model_path)
        label = sampling.resolve_label(FLAGS.label, info["class_names"])
        paths = sampling.write_samples(generator, info, label, range(FLAGS.seed, FLAGS.seed + FLAGS.num),
                                       FLAGS.out_dir, truncation)
    except UserError as e:
        print(f"sample.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"Wrote {len(paths) - 1} images of class {label} ({info['class_names'][label]}) and a grid: "
          f"{paths[-1]}")


if __name__ == "__main__":
    app.run(main)
