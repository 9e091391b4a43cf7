"""`python -m cgan.memorisation`: the command line of cgan.evaluation.memorisation (cgan.evaluation.tool)."""

if __name__ == "__main__":
    from cgan.evaluation import memorisation, tool
    tool.main(memorisation)
