"""What every other folder uses: `UserError`, atomic files, seeds, the option machinery (`options`), the
run configuration (`config.TrainConfig`), PNGs and grids (`images`) and the tools' command line (`cli`).
Imports nothing else from cgan."""
