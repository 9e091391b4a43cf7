"""The command line of every tool: flags from options dataclasses, one error line, exit status 2.

    def main(target, settings):                     # instances of the option classes, checked
        return ["a line", f"Report: {path}"]        # the lines to print

    cli.run("downstream", (tool.Target, downstream.Settings), main)
    cli.run("sample.py", (SampleOptions,), main)    # main(options) prints itself and returns None

A bad flag value, a missing required flag, a stray argument and a UserError each print one line
`<tool>: error: <message>` on stderr and exit with status 2 (`fail`, which trainer.py and sample.py
use too); anything else is a bug and keeps its traceback. `run` ends the last line with the seconds
the tool took: `Report: ...  (42 s)`. Flags are defined only when a tool runs as a program, so
importing its module defines none.
"""

import sys
import time

from cgan.core.errors import UserError


def fail(program, error):
    """Prints `<program>: error: <error>` on stderr and exits with status 2 (a problem the user can fix)."""
    print(f"{program}: error: {error}", file=sys.stderr)
    sys.exit(2)


def parse(program, option_classes, argv, module_name=None):
    """Defines the flags of `option_classes` (cgan.core.options dataclasses), parses `argv`, builds them.

    Returns:
        one instance per class, in order. A bad flag, a stray argument or a bad value prints one line
        `<program>: error: ...` and exits with status 2.
    """
    from absl import flags
    for option_class in option_classes:
        option_class.define_flags(flags.FLAGS, module_name)
    try:
        rest = flags.FLAGS(argv)
        if len(rest) > 1:
            raise UserError(f"unexpected arguments {rest[1:]}: flags take the form --name=value")
        return [option_class.from_flags(flags.FLAGS) for option_class in option_classes]
    except (flags.Error, UserError) as e:
        fail(program, e)


def run(program, option_classes, main):
    """Parses the flags and runs a tool; see the module docstring.

    Args:
        program: the name in error lines, e.g. "evaluate".
        option_classes: the options dataclasses whose flags the tool takes.
        main: called with one instance of each; returns the lines to print, or None when it prints
            itself. A UserError it raises is printed as one line and the exit status is 2.
    """
    from absl import app
    parsed = []

    def parse_flags(argv):
        parsed.extend(parse(program, option_classes, argv, module_name=sys.argv[0]))
        return argv[:1]

    def run_main(argv):
        start = time.perf_counter()
        try:
            lines = main(*parsed)
        except UserError as e:
            fail(program, e)
        if lines:
            lines[-1] += f"  ({time.perf_counter() - start:.0f} s)"
            print("\n".join(lines))

    app.run(run_main, flags_parser=parse_flags)
