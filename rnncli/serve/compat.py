"""Which onnxruntime a model file needs: its IR version and opsets, read without the onnx
package, consulted only after onnxruntime has refused the file.

    need = needed_runtime(Path("model.onnx"), "1.17.3", error_text)
    # 'its IR version 10 needs onnxruntime 1.18 or later (this is 1.17.3): pip install ...'

The versions are read by serve/onnx_file.py (a few protobuf fields, no onnx package).
"""

from __future__ import annotations

from pathlib import Path

from rnncli.serve.onnx_file import read_versions

# The oldest onnxruntime that loads each ONNX IR version, and each opset of the default
# (ai.onnx) domain. Measured: a Sigmoid graph (an op unchanged since opset 13, so only the
# stamp varies) stamped with each IR version and opset, loaded by every onnxruntime release
# from 1.15 to 1.23 (the last patch of each; Linux x86-64 wheels, CPython 3.11). Each
# release reads the IR and opsets of the ONNX release it is built with and refuses newer
# ones: 1.17 reads IR 9 at most, 1.22 IR 10, 1.23 IR 11; opset 22 first loads in 1.21.
# Opsets 17 and 18 (1.12, 1.14) come from onnxruntime's published version matrix
# (onnxruntime.ai/docs/reference/compatibility.html), not measured: no CPython 3.11 wheel
# predates 1.15. An IR or opset above these tables is named without a version to install.
IR_NEEDS = {9: "1.15", 10: "1.18", 11: "1.23"}
OPSET_NEEDS = {17: "1.12", 18: "1.14", 19: "1.15", 20: "1.17", 21: "1.18", 22: "1.21",
               23: "1.23"}

# The oldest release the serving tests pass on: 1.18.1 reads IR 10 but miscomputes the
# masked native graph's TopK (its k read as a float's bits) on some batches, e.g. 7 rows of
# width 5 with the bundled model; 1.19.0 does not (tools/check_minimums.py).
TESTED_FLOOR = "1.19"


def oldest_runtime(ir: int | None, opsets: dict[str, int]) -> str:
    """The oldest onnxruntime that runs a file of this IR version and default-domain opset:
    the later of the tables above and TESTED_FLOOR. The export records it."""
    opset = opsets.get("", opsets.get("ai.onnx"))
    needs = [table[v] for table, v in ((IR_NEEDS, ir), (OPSET_NEEDS, opset)) if v in table]
    return max([*needs, TESTED_FLOOR], key=_version)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits[:6]))
    return tuple(parts)


def needed_runtime(path: Path, installed: str, error: str = "") -> str | None:
    """Why this onnxruntime (version `installed`) cannot read the file at `path`, with the
    version to install, or None when its IR version and opsets are not the reason.
    `error` is onnxruntime's own message: it decides for versions above the tables."""
    ir, opsets = read_versions(path)
    have = _version(installed)
    error = error.lower()
    reasons = []
    if ir is not None:
        reasons.append((f"IR version {ir}", IR_NEEDS, ir, "ir version" in error))
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset is not None:
        reasons.append((f"opset {opset}", OPSET_NEEDS, opset, "opset" in error))
    for what, table, value, named in reasons:
        if value in table and have < _version(table[value]):
            need = table[value]
            return (f"its {what} needs onnxruntime {need} or later (this is {installed}): "
                    f'pip install "onnxruntime>={need}"')
        if value > max(table) and named:
            return (f"its {what} is newer than onnxruntime {installed} reads: "
                    "pip install --upgrade onnxruntime")
    return None
