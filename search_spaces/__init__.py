"""What to try: YAML sweep recipes and the loader that validates them into a SweepSpec (Tune search spaces
are made from it by `jobs.sweep`)."""

from tunelab.search_spaces.spec import SpecError, SweepSpec, load

__all__ = ["SpecError", "SweepSpec", "load"]
