"""The README and docs/ against the tree: the README opens as promised (a title, one paragraph, the
install, quickstart and test commands that CI runs), its layout names every package directory and
library module that exists and nothing that does not, every relative link and anchor resolves, and
the retired spellings appear only where the docs say they still work."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("fedsweep", "flows", "tasks", "cli", "server")
FOLDERS = ("conf", "tests", "mlruns", "benchmarks", "docs")  # top-level folders the layout must name
SETUP = ['pip install -e ".[dev]"', "python flows/sweep.py +experiment=quickstart", "pytest"]
NAME_COLUMN = 12  # layout entries are indented less than this; continuation lines align beyond it


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section, up to the next `## ` heading."""
    start = text.index(f"\n## {heading}\n") + len(heading) + 5
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else len(text)]


def layout_entries() -> list[str]:
    """Paths the README's layout block names (`fedsweep/data/partition/`, `fedsweep/jobs.py`, …):
    an entry's indentation (two spaces a level) nests it under the folder above it."""
    block = section(README.read_text(), "Layout").split("```")[1]
    parents: list[str] = []
    named = []
    for line in block.splitlines()[1:]:
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent >= NAME_COLUMN:
            continue  # a description's continuation
        assert indent % 2 == 0, f"layout: odd indentation in {line!r}"
        parents = parents[: indent // 2]
        prefix = "".join(parents)
        for token in line.split():
            if token.endswith("/"):
                named.append(prefix + token)
                parents.append(token)
                break
            if not token.endswith(".py"):
                break  # the description begins
            named.append(prefix + token)
    return named


def package_dirs() -> set[str]:
    """Every folder under the packages holding Python code, as `fedsweep/data/partition/`."""
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "__pycache__" not in path.parts:
                found.add(path.parent.relative_to(ROOT).as_posix() + "/")
    return found


def test_the_readme_opens_with_a_title_one_paragraph_and_the_three_commands() -> None:
    text = README.read_text()
    title, rest = text.split("\n", 1)
    paragraph, after = rest.strip("\n").split("\n\n", 1)
    commands = after.split("```bash\n", 1)[1].split("```", 1)[0]
    assert title == "# fedsweep" and not paragraph.startswith(("#", "`", "-", "|"))
    assert after.startswith("```bash\n")
    assert [line.split("#")[0].strip() for line in commands.splitlines()] == SETUP


def test_ci_runs_the_readmes_install_and_test_commands() -> None:
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert any(line.startswith(SETUP[0]) for line in ci) and "pytest" in ci


def test_the_layout_names_every_package_directory_and_library_module() -> None:
    named = set(layout_entries())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "fedsweep").glob("*.py")} - {
        "fedsweep/__init__.py"
    }
    required = package_dirs() | {f"{folder}/" for folder in FOLDERS} | modules
    assert not required - named, f"README's layout does not name {sorted(required - named)}"


def test_the_layout_names_nothing_that_does_not_exist() -> None:
    missing = [path for path in layout_entries() if not (ROOT / path).exists()]
    assert not missing, f"README's layout names {missing}, which do not exist"


def test_the_layout_parser_sees_nesting_and_can_fail(monkeypatch, tmp_path) -> None:
    fake = tmp_path / "README.md"
    block = [
        "fedsweep/    lib",
        "  data/      d",
        "    partition/  p",
        "  jobs.py train.py   two",
        "                a continuation: not/ an entry",
        "tests/  t",
    ]
    fake.write_text("# x\n\n## Layout\n\n```\n" + "\n".join(block) + "\n```\n")
    monkeypatch.setattr(f"{__name__}.README", fake)
    assert layout_entries() == [
        "fedsweep/",
        "fedsweep/data/",
        "fedsweep/data/partition/",
        "fedsweep/jobs.py",
        "fedsweep/train.py",
        "tests/",
    ]
    with pytest.raises(AssertionError, match="does not name"):
        test_the_layout_names_every_package_directory_and_library_module()


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#") and " " in line and not line.startswith("#!"):
            heading = line.split(" ", 1)[1].strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", heading)))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # code is not linked
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: link to {target}: no such heading"


RETIRED = re.compile(r"runner\.pool|runner\.dask\.|flows/compare\.py")


@pytest.mark.parametrize("page", [*PAGES, ROOT / "benchmarks" / "README.md"], ids=lambda p: p.name)
def test_retired_spellings_appear_only_where_the_docs_say_they_still_work(page: Path) -> None:
    for part in re.split(r"\n(?=#)", page.read_text()):  # section by section
        if RETIRED.search(part):
            assert "still work" in part, f"{page.name}: {RETIRED.search(part).group()} in {part[:60]!r}"
