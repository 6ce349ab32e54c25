"""The README a newcomer reads first: short, the two commands first, its results generated."""

from __future__ import annotations

from mfutils.book import chapters
from mfutils.runs.paths import project_root

README = project_root() / "README.md"


def test_the_readme_is_short_and_gives_the_two_commands_before_anything_else():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[:2] for line in first_block] == [["make", "book"], ["make", "test"]]
    assert (project_root() / "LICENSE").is_file()


def test_the_results_at_a_glance_are_the_result_files_own():
    text = README.read_text()
    block = text.split(chapters.GLANCE_BEGIN + "\n", 1)[1].split("\n" + chapters.GLANCE_END, 1)[0]
    assert block == chapters.glance_markdown(), "stale: run `python -m mfutils readme` and commit README.md"
