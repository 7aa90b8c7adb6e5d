"""Make an exported model the one the package ships (rnncli/bundled/), `predict`'s default.

    python tools/bundle.py artifacts/best/model.int8.onnx

The bundled file keeps its large weights in a data file beside it (ONNX external data):
onnxruntime maps that file from disk, where weights inside the protobuf are copied out of it
at every start, and a fresh `rnncli predict` pays for each copy (an earlier, 4.4 MB bundled
model, opened with graph optimizations off in a fresh process: 10.2 ms with its weights
inline, 2.6 ms with them outside; benchmarks/bench_startup.py).

The data file's name carries a hash of its bytes, so each step leaves a model that loads:
the new data file is written under its own name, then model.onnx is replaced in one rename,
then the old data file is removed. Before any of it, the new pair is loaded from a
temporary folder and must give the source's exact probabilities.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from rnncli.errors import ModelError
from rnncli.fsutil import atomic_write_bytes
from rnncli.serve.locate import BUNDLED

EXTERNAL_FROM = 1024  # bytes: smaller tensors stay inside the graph file
CHECK_REVIEWS = ["a wonderful, moving film", "a boring, awful waste of time", "great film",
                 "not bad at all, the plot kept me guessing until the end", "zzz"]


def data_name(model_name: str, data: bytes) -> str:
    return f"{Path(model_name).stem}.{hashlib.sha256(data).hexdigest()[:12]}.data"


def bundle(source: Path, target: Path = BUNDLED) -> Path:
    """Write `source` (an rnncli ONNX file) as `target` plus its data file; return the data
    file's path. Raises ModelError if the source is no rnncli model or the copy differs."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from rnncli.serve.onnx_model import OnnxModel

    source, target = Path(source), Path(target)
    expected = [p.probability for p in OnnxModel(source, workers=1).predict_texts(CHECK_REVIEWS)]
    proto = onnx.load(str(source))
    for tensor in proto.graph.initializer:  # onnx moves only tensors held as raw bytes
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=target.parent))
    try:
        onnx.save(proto, str(staging / target.name), save_as_external_data=True,
                  all_tensors_to_one_file=True, location="weights", size_threshold=EXTERNAL_FROM)
        data = (staging / "weights").read_bytes()
        name = data_name(target.name, data)
        (staging / "weights").rename(staging / name)  # the name the graph will point to
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = name
        graph_bytes = proto.SerializeToString()
        (staging / target.name).write_bytes(graph_bytes)
        got = [p.probability for p in
               OnnxModel(staging / target.name, workers=1).predict_texts(CHECK_REVIEWS)]
        if not np.array_equal(np.float32(got), np.float32(expected)):
            raise ModelError(f"{source} written with external data gives other probabilities "
                             f"({got} against {expected}): nothing was replaced.")
        data_path = target.parent / name
        atomic_write_bytes(data_path, data)
        atomic_write_bytes(target, graph_bytes)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for old in target.parent.glob(f"{target.stem}.*.data"):
        if old.name != name:
            old.unlink()
    return data_path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/bundle.py MODEL.onnx", file=sys.stderr)
        return 2
    try:
        data = bundle(Path(argv[0]))
    except ModelError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"{BUNDLED} ({BUNDLED.stat().st_size:,} bytes) + {data.name} "
          f"({data.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
