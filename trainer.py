"""Trains the conditional GAN.

    python trainer.py --flagfile=demo.flags                                # the embedded demo
    python trainer.py --flagfile=p100.flags --manual_dir=/path/to/ISIC    # the baseline's setup on real data
    python trainer.py --flagfile=p100.flags --train_steps=200000          # later flags win

Rerunning the same command resumes from the workdir's last checkpoint. The flags are generated from
cgan.core.config.TrainConfig; all logic is in cgan/.
"""

import sys

from absl import app, flags, logging

from cgan.core import cli, config as config_lib
from cgan.core.errors import UserError

config_lib.TrainConfig.define_flags(flags.FLAGS, module_name=sys.argv[0])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    try:
        config = config_lib.TrainConfig.from_flags(flags.FLAGS)
        from cgan import train  # imports TensorFlow; after the flags are checked so errors come fast
        result = train.train_and_evaluate(config)
    except UserError as e:
        cli.fail("trainer.py", e)
    if not result.stopped_by_signal:
        logging.info("Done at step %d. Samples: python sample.py --workdir=%s --label=0", result.step,
                     config.workdir)


if __name__ == "__main__":
    app.run(main)
