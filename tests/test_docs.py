"""The documentation against the code: the CLI reference is what the CLI says, the README stays a short front door,
and every link between the pages leads somewhere."""

import re

from tests.conftest import ROOT


def test_the_cli_reference_is_what_the_cli_says():
    from tunelab.cli.reference import markdown

    written = (ROOT / "docs" / "cli.md").read_text()
    assert written == markdown(), "docs/cli.md is stale: run `make docs` (python -m tunelab.cli.reference > docs/cli.md)"


def test_the_reference_covers_every_command():
    import typer

    from tunelab.cli import app

    def paths(cmd, prefix):
        subs = getattr(cmd, "commands", None)
        if not subs:
            return [prefix]
        return [p for name, sub in subs.items() for p in paths(sub, f"{prefix} {name}")]

    text = (ROOT / "docs" / "cli.md").read_text()
    missing = [p for p in paths(typer.main.get_command(app), "tunelab") if f"## `{p}`" not in text]
    assert not missing, missing


def test_the_readme_is_a_short_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "make demo" in readme and "make test" in readme and "readme-example" in readme


def test_every_relative_link_leads_to_a_file_and_a_heading():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and dest.suffix == ".md":
                slugs = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
                         for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
                if anchor not in slugs:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
