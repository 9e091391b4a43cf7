"""What a run gives to others: a class-folder dataset export (`dataset_export`, sample.py --export_dir)
and the web page with its API (`serve`, `web/`). Imports the folders before it in cgan.LAYERS only."""
