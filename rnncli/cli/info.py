"""`rnncli info`: what a bug report needs: versions, the machine, the data and the model.

    $ rnncli info
    $ rnncli info --json

Like `spacy info`: rnncli's version and place, Python, the platform, the CPU (architecture,
cores, and the instruction sets onnxruntime and TensorFlow pick their kernels by, from
/proc/cpuinfo where there is one), the installed version of every dependency and extra
(read from the package metadata, never imported: importing TensorFlow to ask its version
would take seconds), the data home and its prepared datasets, and the bundled model.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

import typer

from rnncli import system
from rnncli.cli.common import Command, DataDir, Json, handle_errors, out, print_json

app = typer.Typer(add_completion=False)

# Instruction sets that decide which kernels onnxruntime (MLAS) and TensorFlow (oneDNN,
# Eigen) run, as /proc/cpuinfo spells them: x86 "flags", Arm "Features" (asimd is NEON,
# asimddp the dot product, i8mm the int8 matrix multiply).
CPU_FEATURES = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw",
                "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                "amx_int8", "amx_bf16", "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve",
                "sve2")
NEON = {"asimd": "neon"}
CPUINFO = Path("/proc/cpuinfo")


def cpu_info(cpuinfo: Path = CPUINFO) -> dict:
    """Architecture, model, cores (all, usable by this process, the container's quota)
    and the CPU_FEATURES present; None where this system does not say."""
    model, flags = None, set()
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = value.strip() or None
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    usable = system.affinity_cores()
    return {
        "architecture": platform.machine() or None,
        "model": model or platform.processor() or None,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "quota_cores": system.cgroup_quota(),
        "features": [NEON.get(f, f) for f in CPU_FEATURES if f in flags],
    }


def packages() -> dict[str, dict[str, str | None]]:
    """{group: {distribution: installed version or None}}: "base" for the dependencies of
    every install, then each extra, from rnncli's own package metadata."""
    from importlib import metadata

    groups: dict[str, dict[str, str | None]] = {"base": {}}
    try:
        requires = metadata.requires("rnncli") or []
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        requires = ["typer", "rich", "numpy", "onnxruntime"]
    for req in requires:
        name = re.match(r"[A-Za-z0-9._-]+", req).group(0)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        if not extra and ";" in req and "python_version" in req:
            group = "base"  # a backport (tomli): shown when it is installed
        else:
            group = extra.group(1) if extra else "base"
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = None
        if version is None and group == "base" and ";" in req:
            continue  # a backport this Python does not need
        groups.setdefault(group, {})[name] = version
    return groups


def datasets(home: Path) -> list[dict]:
    """Each dataset source, with its counts when prepared (or why it cannot be read)."""
    from rnncli.data import store
    from rnncli.errors import DataError, NotPreparedError

    current = store.current_source(home)
    found = []
    for source in store.SOURCES:
        entry = {"source": source, "current": source == current, "prepared": False}
        try:
            meta = store.read_meta(home, source)
        except NotPreparedError:
            pass
        except DataError as exc:
            entry["problem"] = str(exc)
        else:
            entry.update(prepared=True, created=meta["created"], vocab_size=meta["vocab_size"],
                         reviews={split: meta["splits"][split]["reviews"]
                                  for split in meta["splits"]})
        found.append(entry)
    return found


def bundled_model() -> dict:
    from rnncli.serve.contract import GRAPH, TEST_REVIEWS, recorded_accuracy
    from rnncli.serve.locate import BUNDLED
    from rnncli.serve.onnx_file import read_metadata

    if not BUNDLED.is_file():
        return {"path": str(BUNDLED), "present": False}
    meta = read_metadata(BUNDLED)
    # The graph and its external-data weights (model.<hash>.data) beside it.
    files = [BUNDLED, *BUNDLED.parent.glob(BUNDLED.stem + ".*.data")]
    reviews = meta.get(TEST_REVIEWS, "")
    return {"path": str(BUNDLED), "present": True,
            "size_bytes": sum(f.stat().st_size for f in files),
            "graph": meta.get(GRAPH), "test_accuracy": recorded_accuracy(meta),
            "test_reviews": int(reviews) if reviews.isdigit() else None}


def gather(data_dir: Path | None) -> dict:
    from rnncli import __version__
    from rnncli.data import store

    home = store.data_home(data_dir)
    return {
        "rnncli": {"version": __version__, "location": str(Path(__file__).resolve().parents[1])},
        "python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "packages": packages(),
        "data_home": str(home),
        "datasets": datasets(home),
        "bundled_model": bundled_model(),
    }


def _versions(group: dict[str, str | None]) -> str:
    return ", ".join(f"{name} {version or 'not installed'}" for name, version in group.items())


LABEL = 12  # the width of the label column


def _field(label: str, text: str, width: int) -> list[str]:
    """One field of the report: its label, then its text wrapped at the terminal's
    width (a long list of packages or CPU features) under the text's first column."""
    import textwrap

    return textwrap.wrap(text, max(width, 40), initial_indent=f"{label:<{LABEL}}",
                         subsequent_indent=" " * LABEL, break_on_hyphens=False,
                         break_long_words=False) or [label]


def render(info: dict, width: int = 80) -> list[str]:
    cpu = info["cpu"]
    cores = f"{cpu['cores']} cores" if cpu["cores"] else "cores unknown"
    if cpu["usable_cores"] not in (None, cpu["cores"]):
        cores += f", {cpu['usable_cores']} usable"
    if cpu["quota_cores"] is not None:
        cores += f", container quota {cpu['quota_cores']:g}"
    fields = [
        ("rnncli", f"{info['rnncli']['version']} ({info['rnncli']['location']})"),
        ("python", f"{info['python']['version']} ({info['python']['implementation']}, "
                   f"{info['python']['executable']})"),
        ("platform", info["platform"]),
        ("cpu", f"{cpu['architecture'] or 'unknown'}, {cores}"
                + (f"; {cpu['model']}" if cpu["model"] else "")),
        ("features", " ".join(cpu["features"]) or "none of interest found"),
    ]
    for group, versions in info["packages"].items():
        if group != "base" and not any(versions.values()):
            shown = f'not installed (pip install "rnncli[{group}]")'
        else:
            shown = _versions(versions)
        fields.append(("packages" if group == "base" else f"[{group}]", shown))
    fields.append(("data home", info["data_home"]))
    for d in info["datasets"]:
        if d["prepared"]:
            counts = " / ".join(f"{d['reviews'][split]:,} {split}"
                                for split in ("train", "test") if split in d["reviews"])
            state = (f"{counts} reviews, vocabulary {d['vocab_size']:,} words, prepared "
                     f"{d['created']}")
        else:
            state = d.get("problem") or "not prepared (`rnncli data fetch`)"
        fields.append((f"  {d['source']}", ("current; " if d["current"] else "") + state))
    b = info["bundled_model"]
    if b["present"]:
        accuracy = (f"test accuracy {b['test_accuracy']:.4f}" if b["test_accuracy"] is not None
                    else "no test accuracy recorded")
        if b["test_reviews"]:
            accuracy += f" on {b['test_reviews']:,} reviews"
        fields.append(("bundled", f"{b['path']} ({b['size_bytes'] / 1e6:.1f} MB, {accuracy})"))
    else:
        fields.append(("bundled", f"missing: {b['path']} (reinstall rnncli)"))
    return [line for label, text in fields for line in _field(label, text, width)]


@app.command("info", cls=Command)
@handle_errors
def info(data_dir: DataDir = None, as_json: Json = False) -> None:
    """Versions, platform, CPU, dependencies, data home and bundled model: for bug reports.

    Package versions come from the installed metadata: nothing is imported to ask them,
    TensorFlow included.

    Example: rnncli info --json
    """
    report = gather(data_dir)
    if as_json:
        return print_json(report)
    for line in render(report, out.width):
        out.print(line, markup=False, highlight=False)
