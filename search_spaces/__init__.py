"""What to try: YAML sweep recipes and the loader that validates them into Tune search spaces.

Sweeps arrive with issue 5; the training config they will vary is `jobs.config.TrainConfig`.
"""
