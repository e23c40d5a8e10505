"""`python -m tunelab.cli …`: the same as the `tunelab` command (a Ray job's entrypoint uses it)."""

from tunelab.cli import main

main()
