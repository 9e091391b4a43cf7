"""`python -m benchmarks`: the benchmark's command line (benchmarks.cli)."""

from benchmarks import cli

cli.main()
