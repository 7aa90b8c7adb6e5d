"""Which onnxruntime a model file needs: its IR version and opsets, read without the onnx
package, consulted only after onnxruntime has refused the file.

    need = needed_runtime(Path("model.onnx"), "1.17.3", error_text)
    # 'its IR version 10 needs onnxruntime 1.18 or later (this is 1.17.3): pip install ...'

An ONNX file is a ModelProto: a protobuf whose top-level field 1 is ir_version (a varint)
and field 8 the repeated opset_import (OperatorSetIdProto: 1 domain, a string; 2 version,
a varint). The graph (field 7, most of the file) is skipped by seeking over it, so a large
model costs a few reads. Serving never needs more of the format than this.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

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

MAX_FIELDS = 10_000  # top-level fields read before giving up on a file that is no model
MAX_OPSET_ENTRY = 4096  # bytes: an opset_import entry is a domain name and a number


def _varint(f: BinaryIO) -> int | None:
    value = shift = 0
    for _ in range(10):  # a 64-bit varint takes at most 10 bytes
        byte = f.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    return None


def _fields(f: BinaryIO, size: int):
    """(field number, value) of each top-level field: an int for a varint, bytes for a
    short length-delimited field, None for a skipped one. Stops at the end or at bytes
    that are no protobuf."""
    for _ in range(MAX_FIELDS):
        key = _varint(f)
        if key is None:
            return
        number, wire = key >> 3, key & 7
        if wire == 0:
            value = _varint(f)
            if value is None:
                return
            yield number, value
        elif wire == 2:
            length = _varint(f)
            if length is None or f.tell() + length > size:
                return
            if length <= MAX_OPSET_ENTRY:
                yield number, f.read(length)
            else:
                f.seek(length, io.SEEK_CUR)
                yield number, None
        elif wire in (1, 5):  # fixed64, fixed32: none at the top level, skipped all the same
            f.seek(8 if wire == 1 else 4, io.SEEK_CUR)
        else:  # groups (3, 4) are not in ONNX; 6, 7 do not exist
            return


def read_versions(path: Path) -> tuple[int | None, dict[str, int]]:
    """(ir_version, {opset domain: version}) of an ONNX file, "" for the default domain;
    (None, {}) where the file does not say (or is no protobuf)."""
    ir, opsets = None, {}
    try:
        with open(path, "rb") as f:
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            for number, value in _fields(f, size):
                if number == 1 and isinstance(value, int):
                    ir = value
                elif number == 8 and isinstance(value, bytes):
                    entry = dict(_fields(io.BytesIO(value), len(value)))
                    domain, version = entry.get(1, b""), entry.get(2)
                    if isinstance(domain, bytes) and isinstance(version, int):
                        opsets[domain.decode("utf-8", "replace")] = version
    except OSError:
        return None, {}
    return ir, opsets


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
