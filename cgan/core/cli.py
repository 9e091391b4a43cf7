"""The command line of the tools that read a run: `python -m cgan.evaluate`, `cgan.evaluation.downstream`, `cgan.evaluation.memorisation`.

    def _define_flags():            # the tool's own flags; --workdir and --json are defined by cli.run
        flags.DEFINE_integer("seeds", 3, "Classifier seeds per training set (0, 1, ...).")

    def _main(flag_values):          # -> the lines to print, the last one naming the report
        report, path = measure(flag_values.workdir, flag_values.seeds, flag_values.json)
        return table_lines(report) + [f"Report: {path}"]

    if __name__ == "__main__":
        cli.run("downstream", "downstream", _define_flags, _main)

Every such tool takes --workdir (required: the run directory of trainer.py) and --json (the report's
path, by default <workdir>/eval/<report name>_step_<step>.json). A bad flag value, a missing
--workdir, a stray argument and a UserError each print one line `<tool>: error: <message>` on stderr
and exit with status 2 (`fail`, which sample.py uses too); anything else is a bug and keeps its
traceback. The last line printed ends with the seconds the tool took: `Report: ...  (42 s)`.

Flags are defined only when a tool runs as a program, so importing its module (trainer.py imports
cgan.evaluation.evaluate) defines none.
"""

import sys
import time

from cgan.core.errors import UserError


def fail(program, error):
    """Prints `<program>: error: <error>` on stderr and exits with status 2 (a problem the user can fix)."""
    print(f"{program}: error: {error}", file=sys.stderr)
    sys.exit(2)


def run(program, report_name, define_flags, main):
    """Parses the flags and runs a tool; see the module docstring.

    Args:
        program: the name in error lines, e.g. "evaluate".
        report_name: the stem of the default report file, <workdir>/eval/<report_name>_step_<step>.json.
        define_flags: defines the tool's own absl flags (called once, before parsing).
        main: called with absl's FLAGS once they are parsed; returns the lines to print (at least one).
            A UserError it raises is printed as one line and the exit status is 2.
    """
    from absl import app, flags

    def parse(argv):
        flags.DEFINE_string("workdir", None, "Run directory of trainer.py (generator.keras, config.json).")
        flags.DEFINE_string("json", None, f"Report path; default <workdir>/eval/{report_name}_step_<step>.json.")
        define_flags()
        try:
            parsed = flags.FLAGS(argv)
        except flags.Error as e:
            fail(program, e)
        if flags.FLAGS.workdir is None:
            fail(program, "--workdir is required: pass the run directory of trainer.py")
        return parsed

    def run_main(argv):
        start = time.perf_counter()
        try:
            if len(argv) > 1:
                raise UserError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
            lines = main(flags.FLAGS)
        except UserError as e:
            fail(program, e)
        lines[-1] += f"  ({time.perf_counter() - start:.0f} s)"
        for line in lines:
            print(line)

    app.run(run_main, flags_parser=parse)
