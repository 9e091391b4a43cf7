"""`python -m cgan.evaluate`: the command line of `cgan.evaluation.evaluate`."""

if __name__ == "__main__":
    from cgan.evaluation import evaluate
    evaluate.main()
