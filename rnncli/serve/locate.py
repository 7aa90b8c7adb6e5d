"""Where models are found: a run folder, a .keras or .onnx file, else artifacts/, else the
model bundled with the package.

    ref = find_model(None, prefer="onnx")   # artifacts/model.onnx, else the bundled model
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnncli.config.run_files import DEFAULT_OUTPUT, MODEL, ONNX, PREPROCESSING
from rnncli.errors import ModelError
from rnncli.fsutil import read_json

BUNDLED = Path(__file__).resolve().parents[1] / "bundled" / "model.onnx"


@dataclass
class ModelRef:
    path: Path  # the .keras or .onnx file
    kind: str  # "keras" or "onnx"
    bundled: bool = False
    # A Keras model in artifacts/ that serving passed over: it has no ONNX file yet.
    not_exported: Path | None = None


def _model_in(folder: Path, prefer: str) -> ModelRef | None:
    for name in ((MODEL, ONNX) if prefer == "keras" else (ONNX, MODEL)):
        if (folder / name).exists():
            return ModelRef(folder / name, "keras" if name == MODEL else "onnx")
    return None


def find_model(path: Path | None, prefer: str = "keras") -> ModelRef:
    """Resolve --model: a run folder, a .keras or .onnx file; default artifacts/, then bundled.

    Serving (prefer="onnx") with no path takes artifacts/model.onnx, else the bundled model:
    right after `rnncli train`, artifacts/ holds only a Keras model, which predict cannot
    serve, so the bundled model answers and the ref says why (not_exported)."""
    if path is None:
        found = _model_in(DEFAULT_OUTPUT, prefer)
        skipped = None
        if found is not None and prefer == "onnx" and found.kind == "keras":
            found, skipped = None, found.path
        if found is None and BUNDLED.exists():
            found = ModelRef(BUNDLED, "onnx", bundled=True, not_exported=skipped)
        if found is None and skipped is not None:
            raise ModelError(f"{skipped} is a Keras model; run `rnncli export onnx` to serve "
                             "it.")
        if found is None:
            raise ModelError(f"No model in {DEFAULT_OUTPUT}/: run `rnncli train` first.")
        return found
    path = Path(path)
    if path.is_dir():
        found = _model_in(path, prefer)
        if found is None:
            raise ModelError(f"No {MODEL} or {ONNX} in {path}: "
                             f"run `rnncli train --output {path}`.")
        return found
    if not path.exists():
        raise ModelError(f"No model at {path}: check --model.")
    if path.suffix == ".keras":
        return ModelRef(path, "keras")
    if path.suffix == ".onnx":
        return ModelRef(path, "onnx")
    raise ModelError(f"{path} is neither a .keras nor an .onnx model: pass one of those.")


def keras_preprocessing(model_path: Path):
    """The preprocessing saved beside a Keras model."""
    from rnncli.text.preprocessing import Preprocessing

    meta = model_path.parent / PREPROCESSING
    if not meta.exists():
        raise ModelError(
            f"No {PREPROCESSING} beside {model_path}: it was not saved by `rnncli train`; "
            "retrain it with rnncli."
        )
    try:
        return Preprocessing.from_dict(read_json(meta))
    except ValueError as exc:
        raise ModelError(f"Unreadable {meta} ({exc}): retrain the model.") from None
