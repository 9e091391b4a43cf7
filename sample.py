"""Writes generated images of one class, or a whole dataset, or serves a page to generate them.

    python sample.py --label=3                          # 16 melanoma images from runs/demo
    python sample.py --label=melanoma --num=64 --seed=100 --out_dir=out
    python sample.py --model=path/generator.keras --label="basal cell carcinoma" --truncation=0.7
    python sample.py --export_dir=out/balanced --top_up_to=max    # real + generated, every class as large
    python sample.py --export_dir=out/generated --per_class=500   # 500 generated images per class
    python sample.py --serve                            # the page at http://127.0.0.1:8000/

Image i comes from seed --seed + i, so the same seed always gives the same image. The export's tree,
seeds and manifest are described in cgan/share/dataset_export.py.
"""

import dataclasses
import os

from absl import flags

from cgan.core import cli, options
from cgan.core.errors import UserError
from cgan.core.options import option


@dataclasses.dataclass(frozen=True)
class SampleOptions(options.Options):
    label: str = option("", "Class to generate: an index (3) or a name (melanoma). Required unless --serve or "
                        "--export_dir.")
    workdir: str = options.workdir("runs/demo")
    model: str = option("", "Path of an exported generator .keras file (its .json beside it); empty = "
                        "<workdir>/generator.keras.")
    num: int = option(16, "Number of images.", lower=1, upper=10_000)
    seed: int = options.image_seed("image i takes seed + i (with --export_dir: the export's first seed, the "
                                   "classes' seeds following one another).")
    truncation: float | None = options.truncation()
    out_dir: str = option("samples", "Folder for the PNGs.")
    export_dir: str = option("", "Write a class-folder dataset into this folder: Train/<class>/*.png, "
                             "Test/<class>/*.png and manifest.json. Needs --per_class or --top_up_to.")
    per_class: int | None = option(None, "With --export_dir: generated images per class, no real training "
                                   "images.")   # its rules: dataset_export.ExportSettings
    top_up_to: str | None = option(None, "With --export_dir: each class's real training images plus generated "
                                   "ones up to this many images per class; 'max' = the largest class's count "
                                   "(balanced).")
    export_add: bool = option(False, "With --export_dir: add to the export already in the folder (new seeds, "
                              "nothing overwritten) instead of refusing a non-empty folder.")
    export_real_test: bool = option(True, "With --export_dir: write the real test split into Test/<class>/ so the "
                                    "tree is a whole Train/ + Test/ dataset; --noexport_real_test writes no Test/.")
    serve: bool = option(False, "Serve a web page (and its API) to generate images instead of writing files.")
    host: str = option("127.0.0.1", "Address to serve on with --serve (loopback: this machine only).")
    port: int = option(8000, "TCP port to serve on with --serve; 0 picks a free one.", lower=0, upper=65535)


FLAGS = flags.FLAGS
PROGRAM = "sample.py"

_FILE_FLAGS = ("label", "num", "seed", "truncation", "out_dir")
_SERVE_FLAGS = ("host", "port")
_EXPORT_FLAGS = ("per_class", "top_up_to", "export_add", "export_real_test")
_ONE_CLASS_FLAGS = ("label", "num", "out_dir")  # file-mode flags that an export has no use for


def _given(names):
    return [f"--{name}" for name in names if FLAGS[name].present]


def _check_mode(opts):
    """The flags of one mode make no sense in another: say so instead of ignoring them."""
    if opts.serve:
        given = _given(_FILE_FLAGS + _EXPORT_FLAGS + ("export_dir",))
        if given:
            raise UserError(f"{', '.join(given)} cannot be used with --serve: pick the class, seeds and "
                            f"truncation on the page")
        return
    given = _given(_SERVE_FLAGS)
    if given:
        raise UserError(f"{', '.join(given)} only applies with --serve: add --serve to serve the page")
    if opts.export_dir:
        given = _given(_ONE_CLASS_FLAGS)
        if given:
            raise UserError(f"{', '.join(given)} cannot be used with --export_dir, which writes every class: "
                            f"use --per_class=N or --top_up_to=N|max")
        return
    given = _given(_EXPORT_FLAGS)
    if given:
        raise UserError(f"{', '.join(given)} only applies with --export_dir: add --export_dir=FOLDER to write "
                        f"a dataset")
    if not opts.label:
        raise UserError("--label is required: pass --label=3 or --label=melanoma (or --serve for the web page); "
                        "--export_dir=FOLDER writes a dataset of every class")


def _export(opts, model_path):
    from cgan.share import dataset_export
    settings = dataset_export.ExportSettings(
        per_class=opts.per_class, top_up_to=opts.top_up_to, seed=opts.seed if FLAGS["seed"].present else None,
        truncation=opts.truncation, add=opts.export_add, real_test=opts.export_real_test)
    manifest = dataset_export.export_dataset(model_path, opts.export_dir, settings)
    print(dataset_export.summary_line(manifest, opts.export_dir))


def main(opts):
    """Writes the images, the export or serves the page; UserError for what the user can fix."""
    _check_mode(opts)
    from cgan.model import model_files, sampling  # import TensorFlow; after the flag checks so errors come fast
    model_path = opts.model or os.path.join(opts.workdir, model_files.GENERATOR_FILE)
    if opts.export_dir:
        _export(opts, model_path)
        return
    if opts.serve:
        from cgan.share import serve
        serve.serve(model_path, opts.host, opts.port)
        return
    generator, info = model_files.load_generator(model_path)
    label = sampling.resolve_label(opts.label, info["class_names"])
    paths = sampling.write_samples(generator, info, label, range(opts.seed, opts.seed + opts.num),
                                   opts.out_dir, opts.truncation)
    guarantee = info.get("privacy")
    privacy = f"; differentially private at (ε = {guarantee['epsilon']:.3g}, δ = {guarantee['delta']:.2g})" \
        if guarantee else ""
    print(f"Wrote {len(paths) - 1} images of class {label} ({info['class_names'][label]}) and a grid: "
          f"{paths[-1]}{privacy}")


if __name__ == "__main__":
    cli.run(PROGRAM, (SampleOptions,), main)
