"""`python -m cgan.downstream`: the command line of cgan.evaluation.downstream (cgan.evaluation.tool)."""

if __name__ == "__main__":
    from cgan.evaluation import downstream, tool
    tool.main(downstream)
