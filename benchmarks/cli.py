"""The benchmark's command line: flags from BenchmarkConfig's fields, run, report, JSON.

    python -m benchmarks                                         # batch 16 and 64, 3 repeats
    python -m benchmarks --batch_sizes=16 --steps=5 --repeats=1  # a quick smoke run
    python -m benchmarks --json=runs/benchmark.json --data_dir=/data/tfds
    python -m benchmarks --quick_gpu --json=quick.json            # the presets, XLA on and off (minutes on a GPU)
    python -m benchmarks --helpfull                              # every flag

    from benchmarks import cli
    cli.main()                                                   # what `python -m benchmarks` calls
"""

import sys

from benchmarks import config as benchmark_config

PROGRAM = "benchmarks"


def _main(argv):
    from absl import app, flags

    from benchmarks import presets, report, run
    from cgan.core.errors import UserError
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")

    def log(line):
        print(line, file=sys.stderr, flush=True)

    try:
        config = benchmark_config.config_from_flags(flags.FLAGS)
        results = presets.run(config, log=log) if config.quick_gpu else run.run(config, log=log)
    except UserError as e:
        print(f"{PROGRAM}: error: {e}", file=sys.stderr)
        sys.exit(2)
    report.write_json(results, config.json)
    print(report.format_presets_report(results) if config.quick_gpu else report.format_report(results))
    print(f"\nevery figure: {config.json}")


def main():
    """Defines the flags, parses the command line and runs the benchmark."""
    from absl import app, flags
    benchmark_config.define_flags(flags.FLAGS, module_name=sys.argv[0])   # listed by --help
    app.run(_main)
