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

from benchmarks.config import BenchmarkConfig
from cgan.core import cli

PROGRAM = "benchmarks"


def _main(config):
    from benchmarks import presets, report, run

    def log(line):
        print(line, file=sys.stderr, flush=True)

    results = presets.run(config, log=log) if config.quick_gpu else run.run(config, log=log)
    report.write_json(results, config.json)
    print(report.format_presets_report(results) if config.quick_gpu else report.format_report(results))
    print(f"\nevery figure: {config.json}")


def main():
    """Parses the command line (flags from BenchmarkConfig) and runs the benchmark."""
    cli.run(PROGRAM, (BenchmarkConfig,), _main)
