"""The one skeleton of the tools that measure a finished run: load it, measure, write JSON and scalars, print.

    from cgan.evaluation import evaluate, tool
    report, path = tool.measure_workdir(evaluate, "runs/demo", evaluate.Settings(num_per_class=50))

    python -m cgan.evaluate --workdir=runs/demo        # tool.main(evaluate): the same, from flags

A tool is a module of `cgan.evaluation` with:
    PROGRAM, REPORT_NAME                     its name in error lines; eval/<REPORT_NAME>_step_<step>.json
    Settings                                 an options dataclass (cgan.core.options): the tool's flags
    measure(source, settings, report_path)   -> the report dict (JSON-able); report_path names side files
    write_scalars(writer, report)            its TensorBoard scalars, in <workdir>/eval
    summary_lines(report)                    the lines printed after a run

Every tool also takes --workdir and --json (`Target`). A missing workdir, a run that has not exported
a generator yet and a bad flag each give one line and exit status 2 (cgan.core.cli).
"""

import dataclasses
import os

from cgan.core import cli, options
from cgan.core.errors import UserError
from cgan.core.files import atomic_write_json
from cgan.model import model_files
from cgan.run import run_source


@dataclasses.dataclass(frozen=True)
class Target(options.Options):
    """The run a tool measures and where its report goes."""
    workdir: str = options.workdir()
    json: str = options.option("", "Report path; empty = <workdir>/eval/<report>_step_<step>.json.")


def load(workdir):
    """The run_source.Source of a run directory; UserError naming the fix when it has no generator yet."""
    if os.path.isdir(workdir) and not os.path.isfile(os.path.join(workdir, model_files.GENERATOR_FILE)):
        raise UserError(f"no {model_files.GENERATOR_FILE} in {workdir}: trainer.py exports it at every "
                        f"checkpoint (--checkpoint_every); measure the run once it has saved one")
    return run_source.load_workdir(workdir)


def measure_workdir(tool, workdir, settings, json_path="", **measure_args):
    """Measures a run directory with `tool`; writes the report and its TensorBoard scalars.

    Args:
        tool: a tool module (module docstring).
        workdir: run directory of trainer.py.
        settings: a `tool.Settings`.
        json_path: the report's path; empty = <workdir>/eval/<tool.REPORT_NAME>_step_<step>.json.
        **measure_args: passed on to tool.measure (e.g. a quicker classifier recipe in tests).

    Returns:
        (report dict, path of the JSON written).

    Raises:
        UserError: missing workdir or generator, a dataset that cannot be found, bad values.
    """
    import tensorflow as tf
    source = load(workdir)
    path = run_source.report_path(workdir, tool.REPORT_NAME, source.step, json_path or None)
    report = tool.measure(source, settings, path, **measure_args)
    atomic_write_json(path, report)
    writer = tf.summary.create_file_writer(run_source.eval_dir(workdir))
    tool.write_scalars(writer, report)
    writer.flush()
    return report, path


def main(tool):
    """The command line of a tool: `if __name__ == "__main__": tool.main(that_module)`."""
    def run(target, settings):
        report, path = measure_workdir(tool, target.workdir, settings, target.json)
        return tool.summary_lines(report) + [f"Report: {path}  TensorBoard: {run_source.eval_dir(target.workdir)}"]
    cli.run(tool.PROGRAM, (Target, tool.Settings), run)
