"""`python -m cgan.downstream`: the command line of `cgan.evaluation.downstream`."""

if __name__ == "__main__":
    from cgan.evaluation import downstream
    downstream.main()
