"""Fit the n-gram head of an exported int8 model again, on its own network, for a file whose
run folder is gone (the bundled model's): what `rnncli train --ngram-head` does after
training (train/head.py: fit_head, then the join's weights on the validation share), done on
the ONNX file, whose network stays as it is.

    python tools/rehead.py model.int8.onnx out.onnx [--weighting nb] [--seed 3]
    python tools/cascade.py out.onnx      # then its cascade and test metrics
    python tools/bundle.py out.onnx

The file must have a head and no cascade yet (`rnncli export onnx --no-cascade`, or a file
from before cascades). Its graph adds the network's logit (the dense layer's output, which
already holds the old join's weight) to the head's; the new join is
sigmoid(a x that logit + b x new head logit + c), fitted on the validation share's reviews
and one random window of each, as training does. a and c go into the dense layer, b into the
head's weights; the head's two tables are stored as int8 with one scale each, as the export
stores them. The training and validation shares are those of the data the model was trained
on (`--split`, 0.2 as training's default) encoded with the model's own preprocessing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def join_inputs(proto) -> tuple[str, str]:
    """(the network's logit, the head's logit): the two inputs of the Add that joins them."""
    from rnncli.export.cascade import HEAD_NODE

    head = HEAD_NODE + ":0"
    for node in proto.graph.node:
        if node.op_type == "Add" and head in node.input:
            other = [i for i in node.input if i != head]
            return other[0], head
    raise SystemExit("Error: the file has no n-gram head joined to its network; export the run "
                     "with --ngram-head and --graph native, then run this tool on its int8 file.")


def network_logits(path: Path, output: str, x: np.ndarray, padding: str) -> np.ndarray:
    """The graph's tensor `output` ([rows, 1]) for padded ids `x`, in length-sorted batches
    cut to their longest row."""
    import onnx
    import onnxruntime as ort

    from rnncli.serve.onnx_model import session_options

    proto = onnx.load(str(path))
    proto.graph.output.append(onnx.helper.make_tensor_value_info(
        output, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(proto.SerializeToString(), session_options(2),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    lengths = (x != 0).sum(1)
    order = np.argsort(lengths, kind="stable")
    out = np.zeros(len(x))
    for at in range(0, len(order), 256):
        rows = order[at : at + 256]
        width = max(1, int(lengths[rows].max()))
        batch = x[rows][:, -width:] if padding == "pre" else x[rows][:, :width]
        out[rows] = session.run([output], {name: batch.astype(np.int32)})[0].ravel()
    return out


def set_table(proto, name: str, values: np.ndarray) -> np.ndarray:
    """Replace the int8 table `name`/int8 ([keys, columns]) and its scale per column;
    returns the scales."""
    from onnx import numpy_helper

    from rnncli.export.quantize import head_table_int8

    q, scale = head_table_int8(values)
    found = {t.name: t for t in proto.graph.initializer}
    for suffix, array in (("/int8", q), ("/scale", scale)):
        if name + suffix not in found:
            raise SystemExit(f"Error: the file has no {name + suffix} (not an int8 export).")
        found[name + suffix].CopyFrom(numpy_helper.from_array(array, name + suffix))
    return scale.ravel()


def rehead(model: Path, output: Path, weighting: str = "nb", seed: int = 3,
           data_dir: Path | None = None, split: float = 0.2) -> dict:
    """Write `model` with its head fitted again to `output`; returns the join's weights (a,
    b, c) and the validation accuracies. Raises SystemExit with a one-line message for a
    file it cannot rehead."""
    import onnx
    from onnx import numpy_helper

    from rnncli.data import store
    from rnncli.export.ngram import TABLE, THIRD
    from rnncli.fsutil import atomic_path
    from rnncli.serve.onnx_model import OnnxModel
    from rnncli.text.tokenizer import pad_sequences
    from rnncli.train.head import fit_head, join_accuracies, join_rows, stack_weights

    served = OnnxModel(model, workers=1)
    if served.has_cascade:
        raise SystemExit(f"Error: {model} has a cascade: rehead a file exported with "
                         "--no-cascade.")
    prep, home = served.preprocessing, store.data_home(data_dir)
    settings = SimpleNamespace(dataset=prep.source or None, num_words=prep.num_words,
                               maxlen=prep.maxlen, padding=prep.padding,
                               truncating=prep.truncating, limit=None,
                               validation_split=split)
    x, y, x_val, y_val = store.training_shares(home, settings)
    proto = onnx.load(str(model))
    net_name, _ = join_inputs(proto)
    inits = {t.name: t for t in proto.graph.initializer}
    gemm = next((n for n in proto.graph.node if n.output[0] == net_name), None)
    if gemm is None or gemm.op_type != "Gemm" or not all(i in inits for i in gemm.input[1:3]):
        raise SystemExit(f"Error: {model}'s network logit does not come from a dense layer.")

    table = next((t for t in proto.graph.initializer if t.name == TABLE + "/int8"), None)
    if table is None:
        raise SystemExit(f"Error: {model} has no int8 head table ({TABLE}/int8): export it "
                         "again with --quantize.")
    order = 3 if any(n.name.endswith(THIRD) for n in proto.graph.node) else 2
    head = fit_head(x, y, prep.num_words, seed, weighting=weighting,  # the graph's table
                    buckets=int(table.dims[0]) - prep.num_words, order=order)
    rows, labels = join_rows(x_val, y_val, seed)  # as training fits the join
    padded = pad_sequences(rows, x_val.shape[1], prep.padding, prep.truncating, start=None)
    net = network_logits(model, net_name, padded, prep.padding)
    lin = head.logits(rows)
    wa, wb, wc = stack_weights(net, lin, labels)

    kernel, bias = (numpy_helper.to_array(inits[i]) for i in gemm.input[1:3])
    inits[gemm.input[1]].CopyFrom(numpy_helper.from_array(
        (kernel * wa).astype(np.float32), gemm.input[1]))
    inits[gemm.input[2]].CopyFrom(numpy_helper.from_array(
        (bias * wa + wc + wb * head.bias).astype(np.float32), gemm.input[2]))
    idf = head.idf.copy()
    idf[0] = 0.0  # flat index 0 is where the graph sends every entry that is not a key
    set_table(proto, TABLE, np.stack([idf, head.weights * wb], axis=1))
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        onnx.save(proto, str(tmp))

    return {"a": wa, "b": wb, "c": wc,
            "val_accuracy": join_accuracies(net, lin, wa * net + wb * lin + wc, labels)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--weighting", default="nb")
    ap.add_argument("--seed", type=int, default=3, help="the run's seed (the windows')")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--split", type=float, default=0.2)
    a = ap.parse_args(argv)

    from rnncli.errors import RnncliError

    try:
        got = rehead(a.model, a.output, a.weighting, a.seed, a.data_dir, a.split)
    except RnncliError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    v = got["val_accuracy"]
    print(f"{a.output}: head weighting {a.weighting}; join a = {got['a']:.3f}, "
          f"b = {got['b']:.3f}, c = {got['c']:.3f}. Validation accuracy, whole reviews / "
          "windows: " + ", ".join(f"{k} {f['whole']:.4f} / {f['windows']:.4f}"
                                  for k, f in v.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
