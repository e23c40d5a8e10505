"""How people see results: terminal tables now; the web dashboard reads the same store."""

from tunelab.dashboards.terminal import leaderboard_table, runs_table, trials_table

__all__ = ["leaderboard_table", "runs_table", "trials_table"]
