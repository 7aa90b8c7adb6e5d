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
temporary folder and must give the source's exact probabilities. A model with no tensor
of EXTERNAL_FROM bytes or more is written whole, with no data file.

Interrupted (Ctrl-C), it removes what it wrote and the previous pair still loads; killed
outright (SIGKILL, a power cut), it leaves its staging folder behind, and the next run
removes that (each run holds a lock inside its own, so a running one's is never taken).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from rnncli.errors import ModelError
from rnncli.fsutil import atomic_write_bytes, exclusive_lock
from rnncli.serve.locate import BUNDLED

EXTERNAL_FROM = 1024  # bytes: smaller tensors stay inside the graph file
STAGING = ".bundle-"  # a run's temporary folder beside the target, named by its prefix
LOCK = ".lock"  # held inside it while the run lives
CHECK_REVIEWS = ["a wonderful, moving film", "a boring, awful waste of time", "great film",
                 "not bad at all, the plot kept me guessing until the end", "zzz"]


def data_name(model_name: str, data: bytes) -> str:
    return f"{Path(model_name).stem}.{hashlib.sha256(data).hexdigest()[:12]}.data"


def bundle(source: Path, target: Path = BUNDLED) -> Path | None:
    """Write `source` (an rnncli ONNX file) as `target` plus its data file; return the data
    file's path (None when every tensor is small enough to stay in the graph file). Raises
    ModelError if the source is no rnncli model or the copy differs."""
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
    remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=target.parent))
    written: list[Path] = []  # files this run created beside the target, until it is done
    try:
        with exclusive_lock(staging / LOCK):
            onnx.save(proto, str(staging / target.name), save_as_external_data=True,
                      all_tensors_to_one_file=True, location="weights",
                      size_threshold=EXTERNAL_FROM)
            name = data = None
            if (staging / "weights").exists():
                data = (staging / "weights").read_bytes()
                name = data_name(target.name, data)
                (staging / "weights").rename(staging / name)  # the name the graph points to
                for tensor in proto.graph.initializer:
                    for entry in tensor.external_data:
                        if entry.key == "location":
                            entry.value = name
            graph_bytes = proto.SerializeToString()
            (staging / target.name).write_bytes(graph_bytes)
            got = [p.probability for p in
                   OnnxModel(staging / target.name, workers=1).predict_texts(CHECK_REVIEWS)]
            if not np.array_equal(np.float32(got), np.float32(expected)):
                raise ModelError(f"{source} written with external data gives other "
                                 f"probabilities ({got} against {expected}): nothing was "
                                 "replaced.")
            data_path = target.parent / name if name else None
            if data_path is not None and not data_path.exists():
                written.append(data_path)
                atomic_write_bytes(data_path, data)
            elif data_path is not None and data_path.read_bytes() != data:
                atomic_write_bytes(data_path, data)  # same name, other bytes: a damaged copy
            atomic_write_bytes(target, graph_bytes)
            written.clear()  # the new pair is in place: keep it whatever happens next
    finally:
        for path in written:  # a data file no graph points to
            path.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    for old in target.parent.glob(f"{target.stem}.*.data"):
        if old.name != name:
            old.unlink()
    return data_path


def remove_leftovers(target: Path) -> list[Path]:
    """Remove what runs that were killed left (SIGKILL runs no cleanup): staging folders,
    temporary files, a data file the graph does not point to. A staging folder whose run
    still holds its lock stays, and with it every other file, since they may be that run's."""
    folder = target.parent
    removed, live = [], False
    for staging in folder.glob(f"{STAGING}*"):
        if not staging.is_dir() or staging.is_symlink():
            continue
        try:
            with exclusive_lock(staging / LOCK):
                shutil.rmtree(staging)
        except BlockingIOError:  # a running bundle's
            live = True
            continue
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        removed.append(staging)
    if live:
        return removed
    for tmp in folder.glob(f".{target.stem}*.tmp-*"):  # atomic_write_bytes's (fsutil)
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    if target.exists():
        used = data_files(target)
        for data in folder.glob(f"{target.stem}.*.data"):
            if data.name not in used:
                data.unlink()
                removed.append(data)
    return removed


def data_files(model: Path) -> set[str]:
    """The external-data files `model`'s graph points to (its own bytes only)."""
    import onnx

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception:  # an unreadable graph: keep every data file, it may need one
        return {p.name for p in model.parent.glob(f"{model.stem}.*.data")}
    return {e.value for t in proto.graph.initializer for e in t.external_data
            if e.key == "location"}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/bundle.py MODEL.onnx", file=sys.stderr)
        return 2
    try:
        data = bundle(Path(argv[0]), BUNDLED)
    except ModelError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"Interrupted: nothing half-written is left, and {BUNDLED} still loads.",
              file=sys.stderr)
        return 130
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"Error: cannot write{where} ({exc.strerror or exc}): check the folder's "
              f"permissions and free space; {BUNDLED} still loads.", file=sys.stderr)
        return 1
    extra = (f" + {data.name} ({data.stat().st_size:,} bytes)" if data else
             f" (no data file: every tensor is under {EXTERNAL_FROM:,} bytes)")
    print(f"{BUNDLED} ({BUNDLED.stat().st_size:,} bytes){extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
