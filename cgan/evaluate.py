"""`python -m cgan.evaluate`: the command line of cgan.evaluation.evaluate (cgan.evaluation.tool)."""

if __name__ == "__main__":
    from cgan.evaluation import evaluate, tool
    tool.main(evaluate)
