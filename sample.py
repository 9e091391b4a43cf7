"""Writes generated images of one class, or a whole dataset, or serves a page to generate them.

    python sample.py --label=3                          # 16 melanoma images from runs/demo
    python sample.py --label=melanoma --num=64 --seed=100 --out_dir=out
    python sample.py --model=path/generator.keras --label="basal cell carcinoma" --truncation=0.7
    python sample.py --export_dir=out/balanced --top_up_to=max    # real + generated, every class as large
    python sample.py --export_dir=out/generated --per_class=500   # 500 generated images per class
    python sample.py --serve                            # the page at http://127.0.0.1:8000/

Image i comes from seed --seed + i, so the same seed always gives the same image. The export's tree,
seeds and manifest are described in cgan/dataset_export.py.
"""

import os

from absl import app, flags

from cgan.core import cli
from cgan.core.errors import UserError

flags.DEFINE_string("label", None, "Class to generate: an index (3) or a name (melanoma). Required unless --serve.")
flags.DEFINE_string("workdir", "runs/demo", "Run directory holding generator.keras (ignored with --model).")
flags.DEFINE_string("model", None, "Path of an exported generator .keras file (its .json beside it).")
flags.DEFINE_integer("num", 16, "Number of images.", lower_bound=1, upper_bound=10_000)
flags.DEFINE_integer("seed", 0, "First seed; image i uses seed + i (with --export_dir: the first seed of the "
                     "export, the classes' seeds following one another).", lower_bound=0)
flags.DEFINE_float("truncation", None, "Truncation threshold t in standard deviations (0.05 to 10): components "
                   "of the noise beyond ±t are redrawn; smaller = more typical images. Default: none.")
flags.DEFINE_string("out_dir", "samples", "Folder for the PNGs.")
flags.DEFINE_string("export_dir", None, "Write a class-folder dataset into this folder: Train/<class>/*.png, "
                    "Test/<class>/*.png and manifest.json. Needs --per_class or --top_up_to.")
flags.DEFINE_integer("per_class", None, "With --export_dir: generated images per class, no real training images.")
flags.DEFINE_string("top_up_to", None, "With --export_dir: each class's real training images plus generated "
                    "ones up to this many images per class; 'max' = the largest class's count (balanced).")
flags.DEFINE_boolean("export_add", False, "With --export_dir: add to the export already in the folder (new "
                     "seeds, nothing overwritten) instead of refusing a non-empty folder.")
flags.DEFINE_boolean("export_real_test", True, "With --export_dir: write the real test split into Test/<class>/ "
                     "so the tree is a whole Train/ + Test/ dataset; --noexport_real_test writes no Test/.")
flags.DEFINE_boolean("serve", False, "Serve a web page (and its API) to generate images instead of writing files.")
flags.DEFINE_string("host", "127.0.0.1", "Address to serve on with --serve (loopback: this machine only).")
flags.DEFINE_integer("port", 8000, "TCP port to serve on with --serve; 0 picks a free one.",
                     lower_bound=0, upper_bound=65535)

FLAGS = flags.FLAGS

_FILE_FLAGS = ("label", "num", "seed", "truncation", "out_dir")
_SERVE_FLAGS = ("host", "port")
_EXPORT_FLAGS = ("per_class", "top_up_to", "export_add", "export_real_test")
_ONE_CLASS_FLAGS = ("label", "num", "out_dir")  # file-mode flags that an export has no use for


def _given(names):
    return [f"--{name}" for name in names if FLAGS[name].present]


def _check_mode():
    """The flags of one mode make no sense in another: say so instead of ignoring them."""
    if FLAGS.serve:
        given = _given(_FILE_FLAGS + _EXPORT_FLAGS + ("export_dir",))
        if given:
            raise UserError(f"{', '.join(given)} cannot be used with --serve: pick the class, seeds and "
                            f"truncation on the page")
        return
    given = _given(_SERVE_FLAGS)
    if given:
        raise UserError(f"{', '.join(given)} only applies with --serve: add --serve to serve the page")
    if FLAGS.export_dir is not None:
        given = _given(_ONE_CLASS_FLAGS)
        if given:
            raise UserError(f"{', '.join(given)} cannot be used with --export_dir, which writes every class: "
                            f"use --per_class=N or --top_up_to=N|max")
        return
    given = _given(_EXPORT_FLAGS)
    if given:
        raise UserError(f"{', '.join(given)} only applies with --export_dir: add --export_dir=FOLDER to write "
                        f"a dataset")
    if FLAGS.label is None:
        raise UserError("--label is required: pass --label=3 or --label=melanoma (or --serve for the web page); "
                        "--export_dir=FOLDER writes a dataset of every class")


def _export(model_path):
    from cgan.share import dataset_export
    settings = dataset_export.ExportSettings(
        per_class=FLAGS.per_class, top_up_to=FLAGS.top_up_to, seed=FLAGS.seed if FLAGS["seed"].present else None,
        truncation=FLAGS.truncation, add=FLAGS.export_add, real_test=FLAGS.export_real_test)
    manifest = dataset_export.export_dataset(model_path, FLAGS.export_dir, settings)
    print(dataset_export.summary_line(manifest, FLAGS.export_dir))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    try:
        _check_mode()
        from cgan.model import sampling  # imports TensorFlow; after flag checks so errors come fast
        from cgan.model import model_files
        model_path = FLAGS.model or os.path.join(FLAGS.workdir, model_files.GENERATOR_FILE)
        if FLAGS.export_dir is not None:
            _export(model_path)
            return
        if FLAGS.serve:
            from cgan.share import serve
            serve.serve(model_path, FLAGS.host, FLAGS.port)
            return
        truncation = sampling.check_truncation(FLAGS.truncation)
        generator, info = model_files.load_generator(model_path)
        label = sampling.resolve_label(FLAGS.label, info["class_names"])
        paths = sampling.write_samples(generator, info, label, range(FLAGS.seed, FLAGS.seed + FLAGS.num),
                                       FLAGS.out_dir, truncation)
    except UserError as e:
        cli.fail("sample.py", e)
    print(f"Wrote {len(paths) - 1} images of class {label} ({info['class_names'][label]}) and a grid: "
          f"{paths[-1]}")


def _parse_flags(argv):
    """absl's parser, but a bad value is one line and exit status 2, as for every other user error."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        cli.fail("sample.py", e)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
