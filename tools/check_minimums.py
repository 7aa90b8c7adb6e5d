"""Install the lowest versions pyproject.toml declares, then run the fast suite and `predict`.

    python tools/check_minimums.py                       # base dependencies, throwaway venv
    python tools/check_minimums.py --extra train         # plus an extra's bounds
    python tools/check_minimums.py --bound onnxruntime=1.18.1 --venv /tmp/venv-min

Every lower bound in [project].dependencies (and in each --extra) becomes an exact pin in a
constraints file: `numpy>=1.24` -> `numpy==1.24`, `x~=1.2` -> `x==1.2`, an environment marker
kept as it is (`tomli==1.1; python_version < '3.11'`). The pins come from pyproject.toml itself,
so the declared ranges and what this check installs cannot drift apart. `--bound NAME=VERSION`
replaces one declared bound for this run (to try a candidate before editing pyproject.toml);
for a name pyproject.toml does not declare it adds a pin (a transitive dependency's floor).

Then, in a fresh virtual environment: `pip install -c constraints.txt -e REPO[extras] pytest`,
the default test suite (as pyproject.toml's addopts: no slow, real_data or spark tests)
from the repository root, and `rnncli predict "a wonderful, moving film"` from an empty
folder (the bundled model). The last line is a one-line summary; the exit status is 0 when
every step passed, 1 when one failed, 2 for a usage error. No prompts: a CI step. Standard
library only.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        sys.exit("check_minimums: needs Python 3.11+ (tomllib) or tomli on Python 3.10")

REPO = Path(__file__).resolve().parents[1]
PREDICT_TEXT = "a wonderful, moving film"
TEST_MARKERS = "not slow and not real_data and not spark"  # pyproject.toml's default run

# PEP 508, as far as pyproject dependency strings go: name, [extras], specifiers, ; marker.
_REQ = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*"
    r"(?:\[(?P<extras>[^\]]*)\])?\s*"
    r"(?P<spec>\(?[^;@]*?\)?)\s*"
    r"(?:;\s*(?P<marker>.+?))?\s*$"
)
_CLAUSE = re.compile(r"^\s*(?P<op>===|==|~=|!=|>=|<=|>|<)\s*(?P<version>[^\s,]+)\s*$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!_-]*$")


def normalize(name: str) -> str:
    """PEP 503: `Scikit_Learn` and `scikit-learn` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    name: str
    version: str | None  # None: no lower bound to pin
    marker: str | None
    declared: str  # the requirement string as written (or "--bound" for an added pin)
    source: str  # "dependencies", "extra train", "--bound"

    def line(self) -> str:
        text = f"{self.name}=={self.version}"
        return f"{text}; {self.marker}" if self.marker else text


def lower_bound(spec: str) -> str | None:
    """The version a specifier list's floor pins to: >=X, ~=X or ==X; None without one."""
    spec = spec.strip().removeprefix("(").removesuffix(")")
    found = None
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = _CLAUSE.match(clause)
        if not m:
            raise ValueError(f"cannot read the specifier {clause!r}")
        if m["op"] in (">=", "~=", "==", "===") and "*" not in m["version"]:
            found = m["version"]
    return found


def parse(requirement: str, source: str) -> Pin:
    if "@" in requirement.split(";")[0]:
        raise ValueError(f"{requirement!r}: a direct reference has no version to pin")
    m = _REQ.match(requirement)
    if not m:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    return Pin(m["name"], lower_bound(m["spec"] or ""), m["marker"], requirement.strip(), source)


def read_pins(pyproject: Path, extras: list[str]) -> list[Pin]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    pins = [parse(r, "dependencies") for r in project.get("dependencies", [])]
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"no extra {extra!r} in {pyproject} (it has: "
                             f"{', '.join(sorted(optional)) or 'none'})")
        pins += [parse(r, f"extra {extra}") for r in optional[extra]]
    return pins


def apply_bounds(pins: list[Pin], bounds: list[str]) -> list[Pin]:
    for bound in bounds:
        name, sep, version = bound.replace("==", "=").partition("=")
        name, version = name.strip(), version.strip()
        if not sep or not name or not _VERSION.match(version):
            raise ValueError(f"--bound {bound!r}: expected NAME=VERSION, e.g. onnxruntime=1.18.1")
        hits = [p for p in pins if normalize(p.name) == normalize(name)]
        for p in hits:
            p.version, p.source = version, f"{p.source}, --bound (declared {p.declared!r})"
        if not hits:
            pins.append(Pin(name, version, None, "--bound", "--bound (not declared)"))
    return pins


def constraints_text(pins: list[Pin]) -> str:
    seen: dict[str, Pin] = {}
    lines = []
    for p in pins:
        if p.version is None:
            continue
        key = (normalize(p.name), p.marker)
        if key in seen:
            if seen[key].version != p.version:
                raise ValueError(f"{p.name}: two floors, {seen[key].version} "
                                 f"({seen[key].source}) and {p.version} ({p.source})")
            continue
        seen[key] = p
        lines.append(p.line())
    return "\n".join(lines) + "\n"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def venv_script(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / (
        f"{name}.exe" if os.name == "nt" else name)


def say(msg: str) -> None:
    print(f"check_minimums: {msg}", flush=True)


def run(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None,
        timeout: float, capture: bool = False) -> subprocess.CompletedProcess:
    say("$ " + " ".join(shlex.quote(str(c)) for c in cmd))
    try:
        return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL, text=True,
                              capture_output=capture)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Install pyproject.toml's lowest declared versions in a fresh venv and run "
                    "the fast test suite and `rnncli predict` there.")
    ap.add_argument("--repo", type=Path, default=REPO, help="the project (default: %(default)s)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME",
                    help="also pin and install this optional-dependencies group (repeatable)")
    ap.add_argument("--bound", action="append", default=[], metavar="NAME=VERSION",
                    help="use VERSION as NAME's floor for this run instead of the declared one "
                         "(repeatable); an undeclared NAME gets a pin")
    ap.add_argument("--venv", type=Path, metavar="PATH",
                    help="build the environment here and keep it (default: a temporary folder, "
                         "removed afterwards); an existing venv there is recreated")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter that creates the venv (default: this one)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary venv")
    ap.add_argument("--pytest-args", default="", metavar="ARGS",
                    help="extra pytest arguments, one shell-quoted string")
    ap.add_argument("--timeout", type=float, default=1800, metavar="S",
                    help="limit for each step in seconds (default: %(default)s)")
    args = ap.parse_args(argv)

    repo = args.repo.resolve()
    pyproject = repo / "pyproject.toml"
    try:
        pins = apply_bounds(read_pins(pyproject, args.extra), args.bound)
        constraints = constraints_text(pins)
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        say(f"usage error: {exc}")
        return 2
    for p in pins:
        if p.version is None:
            say(f"warning: {p.declared!r} ({p.source}) has no lower bound; not pinned")

    started = time.perf_counter()
    timings: dict[str, float] = {}
    failures: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="check-minimums-"))
    if args.venv:
        venv = args.venv.resolve()
        if venv.exists() and not (venv / "pyvenv.cfg").is_file():
            say(f"usage error: {venv} exists and is not a virtual environment")
            return 2
    else:
        venv = work / "venv"
    try:
        cfile = work / "constraints.txt"
        cfile.write_text(constraints, encoding="utf-8")
        print("constraints.txt (from pyproject.toml" + (" and --bound" if args.bound else "")
              + "):\n" + "".join(f"  {line}\n" for line in constraints.splitlines()), end="",
              flush=True)

        t = time.perf_counter()
        res = run([args.python, "-m", "venv", "--clear", venv], timeout=args.timeout)
        if res.returncode:
            say(f"FAILED: could not create a venv at {venv}")
            return 1
        py = venv_python(venv)
        target = str(repo) + (f"[{','.join(args.extra)}]" if args.extra else "")
        pip = [py, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        res = run([*pip, "install", "-c", cfile, "-e", target, "pytest"],
                  timeout=args.timeout, capture=True)
        timings["install"] = time.perf_counter() - t
        if res.returncode:
            # pip's resolver explains a conflict at the end ("The conflict is caused by").
            tail = (res.stdout + res.stderr).rstrip().splitlines()[-30:]
            print("\n".join(tail), flush=True)
            say(f"FAILED: pip could not install the minimums (exit {res.returncode}) in "
                f"{timings['install']:.0f} s: {', '.join(constraints.splitlines())}")
            return 1

        freeze = run([*pip, "freeze", "--exclude-editable"], timeout=args.timeout,
                     capture=True).stdout
        installed = {}
        for line in freeze.splitlines():
            name, sep, version = line.partition("==")
            if sep:
                installed[normalize(name)] = (name, version)
        print("installed (key packages):", flush=True)
        for p in [*pins, Pin("pytest", None, None, "pytest", "test runner")]:
            got = installed.get(normalize(p.name))
            want = f"pinned =={p.version}" if p.version else "not pinned"
            have = (f"{got[0]}=={got[1]}" if got else f"{p.name} (not installed)"
                    if not p.marker else f"{p.name} (not installed; {p.marker})")
            print(f"  {have:<28} {want} [{p.source}]", flush=True)
        print(f"  ({len(installed)} packages in all: pip freeze in {venv})", flush=True)

        t = time.perf_counter()
        pytest_cmd = [py, "-m", "pytest", "-q", "-m", TEST_MARKERS, "-p", "no:cacheprovider",
                      *shlex.split(args.pytest_args)]
        res = run(pytest_cmd, cwd=repo, timeout=args.timeout)
        timings["tests"] = time.perf_counter() - t
        if res.returncode:
            failures.append(f"tests (pytest exit {res.returncode})")

        t = time.perf_counter()
        folder = work / "predict"
        (folder / "home").mkdir(parents=True)
        env = {**os.environ, "RNNCLI_HOME": str(folder / "home")}
        res = run([venv_script(venv, "rnncli"), "predict", PREDICT_TEXT], cwd=folder, env=env,
                  timeout=args.timeout, capture=True)
        timings["predict"] = time.perf_counter() - t
        print(res.stderr + res.stdout, end="", flush=True)
        if res.returncode:
            failures.append(f"predict (exit {res.returncode})")
    finally:
        if args.keep and not args.venv:
            say(f"kept the venv: {venv}")
            shutil.rmtree(work / "predict", ignore_errors=True)
        else:
            shutil.rmtree(work, ignore_errors=True)

    pinned = ", ".join(constraints.splitlines())
    spent = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    total = time.perf_counter() - started
    if failures:
        say(f"FAILED: {'; '.join(failures)} with {pinned} ({spent}; {total:.0f} s in all)")
        return 1
    say(f"OK: {pinned} pass the tests and predict ({spent}; {total:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
