"""Bring an exported model file to what `rnncli export onnx` writes today, for a file whose
run folder is gone (the bundled model's): the n-gram head's Unique node replaced by the
sort-based count (the same outputs, checked on 2,000 test reviews), a cascade fitted on the
validation share of the data it was trained on, and its test metrics recorded again.

    python tools/cascade.py artifacts/best/model.int8.onnx [--data-dir HOME] [--split 0.2]
    python tools/bundle.py artifacts/best/model.int8.onnx

The validation share is the last `--split` of the train split, encoded with the model's own
preprocessing: the share training held out, when the run used the same split (the bundled
model's did: 0.2). The file is replaced via a temporary name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def sort_counts(path: Path) -> int:
    """Replace each Unique node of the n-gram head in the file at `path` by today's export's
    sort-based count (export/ngram.py sorted_counts, the same outputs); returns how many."""
    import onnx

    from rnncli.export.ngram import sorted_counts
    from rnncli.export.ops import GraphBuilder
    from rnncli.fsutil import atomic_path

    proto = onnx.load(str(path))
    graph, done = proto.graph, 0
    for node in list(graph.node):
        if node.op_type != "Unique":
            continue
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        g = GraphBuilder(opset, prefix=f"{node.name}/")
        found, counts = sorted_counts(g, node.input[0])
        g.nodes.append(onnx.helper.make_node("Identity", [found], [node.output[0]]))
        g.nodes.append(onnx.helper.make_node("Identity", [counts], [node.output[3]]))
        at = list(graph.node).index(node)
        nodes = list(graph.node)
        nodes[at:at + 1] = g.nodes
        graph.ClearField("node")
        graph.node.extend(nodes)
        have = {t.name for t in graph.initializer}
        graph.initializer.extend(t for k, t in g.inits.items() if k not in have)
        done += 1
    if done:
        with atomic_path(path) as tmp:
            onnx.save(proto, str(tmp))
    return done


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--split", type=float, default=0.2)
    a = ap.parse_args(argv)

    from rnncli.data import store
    from rnncli.errors import RnncliError
    from rnncli.export.cascade import cascade_file
    from rnncli.export.onnx import record_test_metrics
    from rnncli.serve.onnx_model import OnnxModel

    try:
        served = OnnxModel(a.model, workers=1)
        if served.has_cascade:
            print(f"Error: {a.model} has a cascade already.", file=sys.stderr)
            return 1
        prep, home = served.preprocessing, store.data_home(a.data_dir)
        source = prep.source or None
        settings = SimpleNamespace(dataset=source, num_words=prep.num_words, maxlen=prep.maxlen,
                                   padding=prep.padding, truncating=prep.truncating,
                                   limit=None, validation_split=a.split)
        _, _, x_val, y_val = store.training_shares(home, settings)
        x_test, _ = store.load_encoded(store.load_split(home, "test", source), prep.num_words,
                                       prep.maxlen, prep.padding, prep.truncating)
        check = x_test[:2000]
        before = OnnxModel(a.model, workers=1)._run(check)
        if sort_counts(a.model) and not np.array_equal(
                OnnxModel(a.model, workers=1)._run(check), before):
            print(f"Error: {a.model} with sorted counts gives other probabilities.",
                  file=sys.stderr)
            return 1
        c = cascade_file(a.model, x_val, y_val, x_test)
        recorded = record_test_metrics(a.model, home)
    except RnncliError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"{a.model}: {c.exit_share:.1%} of {c.reviews:,} validation reviews stop at the head "
          f"(|z| >= {c.threshold:.3f}); validation accuracy {c.accuracy:.4f}, "
          f"{c.joined_accuracy:.4f} with the network on every review; test accuracy "
          f"{float(recorded['rnncli.test_accuracy']):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
