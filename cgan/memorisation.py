"""`python -m cgan.memorisation`: the command line of `cgan.evaluation.memorisation`."""

if __name__ == "__main__":
    from cgan.evaluation import memorisation
    memorisation.main()
