"""What a newcomer reads: the README is a first screen whose prediction is the real output,
its quick start works on a fresh machine, and every command, script, path and link in the
README, docs/, RESULTS.md, BENCHMARKS.md, CONTRIBUTING.md and CHANGELOG.md exists; the
package metadata carries its licence."""

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import typer
from conftest import bundled_accuracy
from typer.testing import CliRunner

from rnncli.cli import app
from rnncli.config import file as config_file
from rnncli.config import run_files

tomllib = config_file.toml_parser()
ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# Everything a reader is sent to; CONTRIBUTING.md is for developers, the rest for users.
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in
        [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "RESULTS.md",
         ROOT / "BENCHMARKS.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]}
USER_DOCS = {name: text for name, text in DOCS.items() if name != "CONTRIBUTING.md"}


def section(text: str, heading: str) -> str:
    """The body of the section under `heading` (any level), up to the next heading of the
    same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.MULTILINE)
    assert match, f"no section {heading!r}"
    level = len(match.group(1))
    rest = text[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", without_code(rest), re.MULTILINE)
    return rest[:end.start()] if end else rest


def without_code(text: str) -> str:
    """The text with fenced code blocks blanked out (same length, so offsets hold)."""
    return re.sub(r"```.*?```", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text,
                  flags=re.DOTALL)


def commands(text: str) -> list[str]:
    """Every `rnncli ...` command in the bash blocks of a document."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            for part in re.split(r"&&|\||\s[<>]\s", line):
                part = part.strip()
                if part.startswith("rnncli "):
                    found.append(part)
    return found


def doc_commands() -> list[tuple[str, str]]:
    return [(name, line) for name, text in DOCS.items() for line in commands(text)]


def parse(words: list[str]) -> None:
    """Parse a command line as the CLI would, down to the leaf command, without running it."""
    command = typer.main.get_command(app)
    ctx = command.make_context("rnncli", words, resilient_parsing=False)
    while hasattr(command, "commands"):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize("doc, line", doc_commands())
def test_doc_commands_parse(doc, line):
    words = shlex.split(line)[1:]
    if "--help" in words or "--install-completion" in words or "--show-completion" in words:
        return  # eager options print and exit
    parse(words)


def test_doc_commands_are_found():
    assert len(commands(README)) >= 5
    assert len(doc_commands()) >= 40
    for name in ("docs/data.md", "docs/training.md", "docs/config.md",
                 "docs/export-and-serving.md", "docs/node-client.md"):
        assert commands(DOCS[name]), f"{name} shows no rnncli command"
    assert not any("[" in c.split("#")[0] for _, c in doc_commands()), "no [optional] syntax"


def test_readme_is_a_first_screen_with_real_output():
    size = len(README.encode())
    assert size <= 16 * 1024, f"README.md is {size:,} bytes: move detail to docs/"
    first = re.search(r"```bash\n(.*?)```\s*```\n(.*?)```", README, re.DOTALL)
    assert first, "a bash block, then the output it prints"
    block, shown = first.groups()
    steps = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    assert "pip install ." in steps
    predict = steps[-1]
    assert predict.startswith("rnncli predict "), steps
    # The bundled model's answer, as predict prints it (no model in artifacts/ here).
    res = CliRunner().invoke(app, shlex.split(predict)[1:])
    assert res.exit_code == 0, res.output
    assert res.stdout == shown, "paste the real output of the README's first command"
    for heading in ("The pipeline", "Results", "Installing"):
        section(README, heading)
    assert bundled_accuracy() in section(README, "Results")


def test_quick_start_is_for_a_fresh_machine():
    quick = section(README, "Quick start: train, export and predict your own model")
    steps = re.findall(r"^(python3 -m venv|pip install|rnncli [\w-]+(?: [\w-]+)?)", quick,
                       re.MULTILINE)
    # predict serves ONNX: without the export it refuses the Keras model train left.
    assert steps[:6] == ["python3 -m venv", "pip install", "rnncli data fetch",
                         "rnncli train", "rnncli export onnx", "rnncli predict"], steps
    assert "rnncli data fetch --from" in quick, "the offline route"
    assert "`pip install rnncli` fails" in README


def test_install_section_gives_sizes_and_the_unpublished_package():
    for install in (section(README, "Installing"), DOCS["docs/installing.md"]):
        assert "virtual environment" in install
        assert re.search(r"\d+ MB", install) and "GB" in install
        assert "install_size.py" in install
        assert "pip install rnncli` fails" in install


def test_completion_leads_with_install_completion():
    completion = section(DOCS["docs/installing.md"], "Shell completion")
    assert completion.index("rnncli --install-completion") < completion.index("completions/")
    assert not any("cp completions/" in text for text in DOCS.values())


def test_run_folder_files_are_documented():
    training = DOCS["docs/training.md"]
    for name in (run_files.CONFIG_TOML, run_files.LAST_RUN, run_files.CONFIG,
                 run_files.PREPROCESSING, run_files.HEAD_JSON):
        assert f"`{name}`" in training, name


def runnable(module: str) -> bool:
    """`python -m module` runs something: a module with a __main__ block, or a package
    with a __main__ module."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    if spec.submodule_search_locations is not None:  # a package
        return importlib.util.find_spec(f"{module}.__main__") is not None
    return "__main__" in Path(spec.origin).read_text()


# CHANGELOG.md names what modules and scripts were called before, on purpose.
@pytest.mark.parametrize("doc", sorted(set(DOCS) - {"CHANGELOG.md"}))
def test_scripts_modules_and_paths_named_exist(doc):
    text = DOCS[doc]
    for script in re.findall(r"python3? ((?:tools|benchmarks)/[\w./-]+\.py)", text):
        assert (ROOT / script).is_file(), f"{doc} runs {script}, which does not exist"
    for module in re.findall(r"python3? -m (rnncli(?:\.\w+)*)", text):
        assert runnable(module), f"{doc}: `python -m {module}` runs nothing"
    for path in re.findall(r"`((?:rnncli|tools|benchmarks|tests|examples|completions)/"
                           r"[\w./-]*)`", text):
        assert (ROOT / path).exists(), f"{doc} names {path}, which does not exist"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_relative_links_resolve(doc):
    for target in re.findall(r"\]\(([^)\s]+)\)", without_code(DOCS[doc])):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (ROOT / doc).parent / path if path else ROOT / doc
        assert file.exists(), f"{doc} links to {target}: no such file"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", without_code(file.read_text()), re.MULTILINE)
            assert anchor in {slug(h) for h in headings}, f"{doc} links to {target}: no anchor"


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_no_path_of_a_developer_machine(doc):
    text = DOCS[doc]
    assert "../shared" not in text and "/work/" not in text, doc
    if doc in USER_DOCS:
        assert "RNNCLI_TEST_ARCHIVE" not in text, "the test archive is for CONTRIBUTING.md"


def test_pyproject_declares_an_spdx_licence_with_its_file():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "the rnncli authors" in licence
    assert any(r.startswith("setuptools>=77") for r in meta["build-system"]["requires"])
