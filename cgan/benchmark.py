"""Forwards to the benchmark, which lives in `benchmarks/` beside `cgan/`: the same as `python -m benchmarks`.

    python -m cgan.benchmark --batch_sizes=16 --steps=5 --repeats=1
"""

if __name__ == "__main__":
    from benchmarks import cli
    cli.main()
