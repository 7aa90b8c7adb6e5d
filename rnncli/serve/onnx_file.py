"""An ONNX file's top-level fields, read without the onnx package or onnxruntime: its IR
version and opsets (for serve/compat.py, when onnxruntime refuses a file) and its short
metadata (for `rnncli runs`, which loads no model).

    ir, opsets = read_versions(Path("model.onnx"))     # 10, {"": 17}
    read_metadata(Path("model.onnx"))["rnncli.graph"]    # "native"

An ONNX file is a ModelProto: a protobuf whose top-level field 1 is ir_version (a varint),
field 8 the repeated opset_import (OperatorSetIdProto: 1 domain, a string; 2 version, a
varint) and field 14 the repeated metadata_props (StringStringEntryProto: 1 key, 2 value).
The graph (field 7, most of the file) is skipped by seeking over it, so a large model costs
a few reads.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

IR_VERSION, OPSET_IMPORT, METADATA_PROPS = 1, 8, 14
MAX_FIELDS = 100_000  # top-level fields read before giving up on a file that is no model
# Longer entries are skipped: an opset entry is a domain name and a number, and the
# metadata worth listing is short (the vocabulary, the one long entry, is left out).
MAX_ENTRY = 1 << 16


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


def fields(f: BinaryIO, size: int):
    """(field number, value) of each field: an int for a varint, bytes for a
    length-delimited field of at most MAX_ENTRY bytes, None for a longer one (skipped).
    Stops at the end or at bytes that are no protobuf."""
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
            if length <= MAX_ENTRY:
                yield number, f.read(length)
            else:
                f.seek(length, io.SEEK_CUR)
                yield number, None
        elif wire in (1, 5):  # fixed64, fixed32: none at the top level, skipped all the same
            f.seek(8 if wire == 1 else 4, io.SEEK_CUR)
        else:  # groups (3, 4) are not in ONNX; 6, 7 do not exist
            return


def _top_fields(path: Path):
    """Every top-level field of the file; [] for a file that cannot be read."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            return list(fields(f, size))
    except OSError:
        return []


def _entry(value: bytes) -> dict:
    return dict(fields(io.BytesIO(value), len(value)))


def read_versions(path: Path) -> tuple[int | None, dict[str, int]]:
    """(ir_version, {opset domain: version}) of an ONNX file, "" for the default domain;
    (None, {}) where the file does not say (or is no protobuf)."""
    ir, opsets = None, {}
    for number, value in _top_fields(path):
        if number == IR_VERSION and isinstance(value, int):
            ir = value
        elif number == OPSET_IMPORT and isinstance(value, bytes):
            entry = _entry(value)
            domain, version = entry.get(1, b""), entry.get(2)
            if isinstance(domain, bytes) and isinstance(version, int):
                opsets[domain.decode("utf-8", "replace")] = version
    return ir, opsets


def read_metadata(path: Path) -> dict[str, str]:
    """The short metadata_props of an ONNX file (entries over MAX_ENTRY bytes, such as the
    vocabulary, left out); {} for a file that cannot be read or is no protobuf."""
    found: dict[str, str] = {}
    for number, value in _top_fields(path):
        if number == METADATA_PROPS and isinstance(value, bytes):
            entry = _entry(value)
            key, text = entry.get(1), entry.get(2, b"")
            if isinstance(key, bytes) and isinstance(text, bytes):
                found[key.decode("utf-8", "replace")] = text.decode("utf-8", "replace")
    return found
