"""What to try: YAML sweep recipes, the loader that validates them into a SweepSpec, and their translation into
Tune's search space, scheduler and searcher (`to_tune`, in `search_spaces.tune`: imported, with Ray, only when
asked for, so that loading a recipe does not import Ray)."""

from tunelab.search_spaces.spec import SpecError, SweepSpec, load

__all__ = ["SpecError", "SweepSpec", "TuneSetup", "load", "to_tune"]


def __getattr__(name: str):
    if name in ("TuneSetup", "to_tune"):
        from tunelab.search_spaces import tune

        return getattr(tune, name)
    raise AttributeError(f"module 'tunelab.search_spaces' has no attribute {name!r}")
