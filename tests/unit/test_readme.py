"""The README is the page a team decides on (issue 68, item 1): what the registry serves, exactly; what it does
around serving; the two set-up commands; a quick start; a map of every document; short enough to read."""
import re

from config import BASE_DIR

README = (BASE_DIR / "README.md").read_text()
SECTIONS = re.findall(r"^## (.+)$", README, re.MULTILINE)


def test_the_readme_is_short_enough_to_read_in_one_sitting():
    assert README.count("\n") <= 300


def test_the_first_screen_names_every_library_served_and_the_abilities_around_serving():
    first_screen = README[:README.index("## What it serves")]  # the title and the paragraph under it
    for said in ("scikit-learn", "XGBoost", "LightGBM", "without a restart", "canary", "approvals",
                 "explanations", "monitoring", "batch scoring", "dashboard"):
        assert said in first_screen, said


def test_it_has_the_sections_a_team_decides_on_in_order():
    wanted = ["What it serves", "What it does around serving", "Set up", "Quick start", "Documentation"]
    assert [section for section in SECTIONS if section in wanted] == wanted


def test_what_it_serves_names_every_kind_and_file_format():
    serves = README[README.index("## What it serves"):README.index("## What it does around serving")]
    for said in ("`linear`", "`logistic`", "`tree`", "`forest`", "`boosting`", "joblib", "pickle", "skops",
                 "`.json`", "`.ubj`", "`.txt`"):
        assert said in serves, said


def test_set_up_gives_the_two_commands():
    set_up = README[README.index("## Set up"):README.index("## Quick start")]
    assert "make run" in set_up and "make test" in set_up


def test_the_map_links_every_document_in_docs():
    documentation = README[README.index("## Documentation"):]
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)\)", documentation))
    assert linked == {f"docs/{path.name}" for path in (BASE_DIR / "docs").glob("*.md")}
