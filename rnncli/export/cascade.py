"""The cascade: a model's n-gram head decides the reviews it is sure of, and the recurrent
network runs only on the others, inside the one graph.

    cascade = fit_cascade(head_logits, probabilities, labels)  # on the validation share
    proto = add_cascade(proto, cascade)                        # an id graph with a head

The joined model computes sigmoid(a x network logit + b x head logit + c). The head alone
is a linear model over words, word pairs and triples, a few thousand multiply-adds a review against
the network's millions, and on IMDB it is right about most reviews: what the cascade adds
is a calibration of the head alone, z = alpha x (b x head logit) + beta (a one-feature
logistic regression on the validation share), and a threshold t. A review with |z| >= t
gets sigmoid(z); the rest go on through the network and get the joined probability. The
threshold is the smallest (most reviews stopping at the head) at which the accuracy the
cascade is expected to cost on the validation share is at most BUDGET, the expectation
taken under the joined model's own probability p (fitted on those reviews): a review
stopping at the head costs |2p - 1| where the head's label differs from the joined model's,
nothing where they agree. Counted against the labels instead, a threshold's luck on 5,000
reviews (the head right where the network was wrong) paid for its losses, and the smallest
threshold within the budget was the luckiest: such cascades cost the test split 0.32 and
0.33 point where the validation share said 0.10.

In the graph, the head runs on the whole batch; NonZero picks the rows below the threshold,
and an If node runs the network on those rows only (Gather), scattering their joined
probabilities back (ScatterND). The If keeps a batch where every review stops at the head
from running the network on zero rows. The threshold is the graph input CASCADE_INPUT with
its default stored in the graph: serving feeds +inf to run the network on every review
(`--no-cascade`), which gives the joined model's outputs exactly as before.

Only models of 2 labels with the n-gram head get a cascade; for K > 2 labels the export
writes the joined model as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from rnncli.errors import GraphUnsupported
from rnncli.serve.contract import CASCADE, CASCADE_INPUT, INPUT

BUDGET = 0.001  # validation accuracy the cascade may cost: 0.1 point
HEAD_NODE = "ngram_logit"  # export/ngram.py's last node: the head's logit, [batch, 1]
PREFIX = "cascade/"


@dataclass
class Cascade:
    alpha: float  # z = alpha x head logit (as in the graph, b included) + beta
    beta: float
    threshold: float  # |z| >= threshold: the review stops at the head
    exit_share: float  # of the validation reviews that stop at the head
    accuracy: float  # on the validation share, with the cascade
    joined_accuracy: float  # the same reviews, every one through the network
    head_accuracy: float  # the head alone, calibrated
    reviews: int
    budget: float = BUDGET  # the expected cost the threshold was fitted to

    def metadata(self) -> dict[str, str]:
        return {CASCADE: json.dumps({k: round(v, 6) if isinstance(v, float) else v
                                     for k, v in asdict(self).items()})}


def calibrate(head: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """(alpha, beta) of the logistic regression of the labels on the head's logit: Newton's
    method on two numbers, with a tiny L2 that keeps them finite on separable data."""
    x = np.asarray(head, np.float64).ravel()
    t = (np.asarray(y).ravel() > 0.5).astype(np.float64)
    feats = np.stack([x, np.ones_like(x)], 1)
    w = np.zeros(2)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(feats @ w)))
        grad = feats.T @ (p - t) + 1e-6 * w
        hess = (feats * (p * (1 - p))[:, None]).T @ feats + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def fit_cascade(head: np.ndarray, joined: np.ndarray, y: np.ndarray,
                budget: float = BUDGET) -> Cascade:
    """The cascade for a model whose head gives `head` logits (as in the graph) and whose
    joined output gives `joined` probabilities on held-out reviews labelled `y`: the
    smallest threshold whose expected cost (module docstring) is at most `budget`."""
    head, joined = np.asarray(head, np.float64).ravel(), np.asarray(joined).ravel()
    truth = np.asarray(y).ravel() > 0.5
    alpha, beta = calibrate(head, truth)
    z = alpha * head + beta
    margin, by_head, by_net = np.abs(z), z > 0, joined > 0.5
    n = len(truth)
    cost = np.where(by_head != by_net, np.abs(2 * joined - 1), 0.0)
    # Reviews stop from the surest down; every cost is >= 0, so the cost of stopping the k
    # surest only grows with k, and reviews of one margin stop together.
    order = np.argsort(-margin, kind="stable")
    spent = np.cumsum(cost[order]) / n
    last = np.r_[margin[order][1:] != margin[order][:-1], True]  # a margin's last review
    fits = np.flatnonzero(last & (spent <= budget + 1e-12))
    t = float(margin[order][fits[-1]]) if len(fits) else float(margin.max() * 2 + 1)
    sure = margin >= t
    return Cascade(alpha=alpha, beta=beta, threshold=t, exit_share=float(sure.mean()),
                   accuracy=float((np.where(sure, by_head, by_net) == truth).mean()),
                   joined_accuracy=float((by_net == truth).mean()),
                   head_accuracy=float((by_head == truth).mean()), reviews=n,
                   budget=float(budget))


def _subgraph_inputs(graph) -> set[str]:
    """Names a subgraph reads from the scope around it."""
    made = {o for n in graph.node for o in n.output}
    made |= {i.name for i in graph.input} | {t.name for t in graph.initializer}
    return {i for n in graph.node for i in _reads(n) if i and i not in made}


def _branches(node) -> list:
    return [g for attr in node.attribute
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)]


def _reads(node) -> list[str]:
    """A node's inputs, and the names its subgraphs (If, Loop, Scan) read from outside."""
    names = list(node.input)
    for g in _branches(node):
        names += sorted(_subgraph_inputs(g))
    return names


def _rename(nodes: Iterable, old: str, new: str) -> None:
    for node in nodes:
        for k, name in enumerate(node.input):
            if name == old:
                node.input[k] = new
        for g in _branches(node):
            if old not in {o for n in g.node for o in n.output}:
                _rename(g.node, old, new)


@dataclass
class Split:
    """A graph that ends in sigmoid(network logit + head logit), cut in two."""
    outer: list  # nodes that stay where they are: the head, constants
    branch: list  # the network's nodes that read the ids: they run on the unsure rows
    head: str  # the head's logit [batch, 1]
    network: str  # the network's logit [batch, 1]


def joins(graph) -> list:
    """The graphs of `graph` (itself, or the branches of the If it ends in, as a hybrid graph
    does) that end in the join of network and head."""
    producer = {o: n for n in graph.node for o in n.output if o}
    final = producer.get(graph.output[0].name) if len(graph.output) == 1 else None
    if final is not None and final.op_type == "If":
        return [g for b in _branches(final) for g in joins(b)]
    return [graph]


def split_graph(graph) -> Split:
    """Cut a graph ending in Sigmoid(Add(network logit, head logit)); GraphUnsupported for
    any other (no head, K > 2 labels' softmax, tf2onnx's names)."""
    producer = {o: n for n in graph.node for o in n.output if o}
    final = producer.get(graph.output[0].name) if len(graph.output) == 1 else None
    add = producer.get(final.input[0]) if final is not None and final.op_type == "Sigmoid" \
        else None
    heads = [i for i in add.input if i in producer and producer[i].name.endswith(HEAD_NODE)] \
        if add is not None and add.op_type == "Add" else []
    if len(heads) != 1:
        raise GraphUnsupported("the cascade needs a model of 2 labels with the n-gram head")
    head = heads[0]
    network = next(i for i in add.input if i != head)

    def ancestors(name: str) -> set[int]:
        seen, todo = set(), [name]
        while todo:
            n = producer.get(todo.pop())
            if n is not None and id(n) not in seen:
                seen.add(id(n))
                todo += _reads(n)
        return seen

    on_head, on_net = ancestors(head), ancestors(network)
    dynamic, live = set(), {INPUT}  # nodes that read the ids, directly or not
    for n in graph.node:
        if any(i in live for i in _reads(n)):
            dynamic.add(id(n))
            live.update(n.output)
    moved = {id(n) for n in graph.node
             if id(n) in on_net and id(n) in dynamic and id(n) not in on_head}
    branch = [n for n in graph.node if id(n) in moved]
    # What reads the ids and feeds neither logit is dead (an unrolled graph's unused
    # step outputs): it is left out rather than run on the whole batch.
    outer = [n for n in graph.node if id(n) not in moved and n is not add and n is not final
             and (id(n) in on_head or id(n) not in dynamic)]
    # The branch runs on some rows only: it may read the ids and constants from outside,
    # never a tensor of the whole batch.
    whole = {o for n in outer if id(n) in dynamic for o in n.output if o}
    mixed = {i for n in branch for i in _reads(n)} & whole
    if mixed:
        raise GraphUnsupported(f"the network reads {sorted(mixed)[0]}, a tensor of the head's")
    return Split(outer, branch, head, network)


def _cascade_graph(graph, cascade: Cascade, p: str) -> None:
    """Rewrite `graph` in place: its network runs in an If, on the rows the head is unsure
    of; names made here start with `p`; the constants are the model's (add_cascade)."""
    from onnx import TensorProto, helper

    cut = split_graph(graph)
    out = graph.output[0]
    nodes = list(cut.outer)

    def one(op: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [p + name], name=p + name, **attrs))
        return p + name

    c = PREFIX
    z = one("Add", [one("Mul", [cut.head, c + "alpha"], "scaled"), c + "beta"], "z")
    by_head = one("Sigmoid", [z], "head_probability")
    sure = one("GreaterOrEqual", [one("Abs", [z], "margin"), CASCADE_INPUT], "sure")
    unsure = one("Reshape", [one("Not", [sure], "unsure_2d"), c + "flat"], "unsure")
    rows = one("Transpose", [one("NonZero", [unsure], "rows_1n")], "rows")  # [m, 1]
    flat = one("Reshape", [rows, c + "flat"], "rows_flat")
    any_unsure = one("Greater", [one("Size", [flat], "count"), c + "zero"], "any")

    ids = p + "ids"
    _rename(cut.branch, INPUT, ids)
    then_nodes = [helper.make_node("Gather", [INPUT, flat], [ids], name=ids, axis=0),
                  *cut.branch,
                  helper.make_node("Gather", [cut.head, flat], [p + "rows_head"],
                                   name=p + "rows_head", axis=0),
                  helper.make_node("Add", [cut.network, p + "rows_head"], [p + "rows_logit"],
                                   name=p + "rows_logit"),
                  helper.make_node("Sigmoid", [p + "rows_logit"], [p + "rows_probability"],
                                   name=p + "rows_probability"),
                  helper.make_node("ScatterND", [by_head, rows, p + "rows_probability"],
                                   [p + "joined"], name=p + "joined")]
    shape = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] or None
    then_g = helper.make_graph(then_nodes, p + "network", [], [
        helper.make_tensor_value_info(p + "joined", TensorProto.FLOAT, shape)])
    else_g = helper.make_graph(
        [helper.make_node("Identity", [by_head], [p + "head_only"], name=p + "head_only")],
        p + "head", [], [helper.make_tensor_value_info(p + "head_only", TensorProto.FLOAT,
                                                       shape)])
    nodes.append(helper.make_node("If", [any_unsure], [out.name], name=p + "if",
                                  then_branch=then_g, else_branch=else_g))
    graph.ClearField("node")
    graph.node.extend(nodes)


def add_cascade(proto, cascade: Cascade):
    """A copy of the id model `proto` (2 labels, with the n-gram head) in which the network
    runs only on the reviews the head is unsure of (module docstring); each branch of a
    hybrid graph gets its own."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    g = proto.graph
    targets = joins(g)
    for i, graph in enumerate(targets):
        _cascade_graph(graph, cascade, PREFIX if len(targets) == 1 else f"{PREFIX}{i}/")
    for name, value in (("alpha", np.float32(cascade.alpha)), ("beta", np.float32(cascade.beta)),
                        ("flat", np.array([-1], np.int64)), ("zero", np.int64(0))):
        g.initializer.append(numpy_helper.from_array(np.asarray(value), PREFIX + name))
    # The threshold: an input whose default is an initializer, so a caller may replace it.
    g.initializer.append(numpy_helper.from_array(np.array(cascade.threshold, np.float32),
                                                 CASCADE_INPUT))
    g.input.append(helper.make_tensor_value_info(CASCADE_INPUT, TensorProto.FLOAT, []))
    props = {q.key: q.value for q in proto.metadata_props}
    helper.set_model_props(proto, {**props, **cascade.metadata()})
    return proto


def head_model(proto):
    """A model of the head alone: ids in, the head's logit [batch, 1] out, read from the
    first graph of `proto` that joins a head (what the cascade is fitted and checked on)."""
    import onnx
    from onnx import TensorProto, helper

    graph = joins(proto.graph)[0]
    cut = split_graph(graph)
    producer = {o: n for n in graph.node for o in n.output if o}
    needed, todo = set(), [cut.head]
    while todo:
        n = producer.get(todo.pop())
        if n is not None and id(n) not in needed:
            needed.add(id(n))
            todo += _reads(n)
    nodes = [n for n in graph.node if id(n) in needed]
    head = helper.make_graph(nodes, "ngram_head", [proto.graph.input[0]], [
        helper.make_tensor_value_info(cut.head, TensorProto.FLOAT, None)],
        initializer=list(proto.graph.initializer))
    model = helper.make_model(head, opset_imports=list(proto.opset_import))
    model.ir_version = proto.ir_version
    return onnx.ModelProto.FromString(model.SerializeToString())


CHECKED = 2000  # reviews each of the cascade's paths is checked on
BATCH = 64


def _scores(sess, x: np.ndarray, feed: dict | None = None) -> np.ndarray:
    name = sess.get_outputs()[0].name
    parts = [sess.run([name], {INPUT: x[i:i + BATCH], **(feed or {})})[0]
             for i in range(0, len(x), BATCH)]
    return np.concatenate(parts).ravel().astype(np.float64)


def check_cascade(model, head, cascaded, x: np.ndarray, cascade: Cascade,
                  atol: float = 1e-5) -> float:
    """Both paths of the session `cascaded` against the sessions of the model without the
    cascade and of its head alone: +inf as threshold is the joined model, 0 is the
    calibrated head alone, and the stored threshold gives each review the one its margin
    picks. Returns the largest difference; raises ExportError beyond `atol`."""
    from rnncli.errors import ExportError

    x = x[:CHECKED]
    joined = _scores(model, x)
    z = cascade.alpha * _scores(head, x) + cascade.beta
    alone = 1.0 / (1.0 + np.exp(-z))
    # A margin within float rounding of the threshold may fall either way.
    near = np.abs(np.abs(z) - cascade.threshold) < 1e-5
    picked = np.where(np.abs(z) >= cascade.threshold, alone, joined)
    diffs = []
    for threshold, want in ((np.inf, joined), (0.0, alone), (None, picked)):
        feed = None if threshold is None else {CASCADE_INPUT: np.array(threshold, np.float32)}
        got = _scores(cascaded, x, feed)
        diff = np.abs(got - want)
        if threshold is None:
            diff = np.where(near, np.minimum(np.abs(got - joined), np.abs(got - alone)), diff)
        diffs.append(float(diff.max(initial=0.0)))
    worst = max(diffs)
    if not worst <= atol:
        paths = ("the network on every review", "the head alone", "the cascade")
        raise ExportError(f"The cascade's graph differs from the model by {worst:.3g} on "
                          f"{paths[int(np.argmax(diffs))]} (--atol {atol:g}): a bug in rnncli; "
                          "`--no-cascade` exports without it.")
    return worst


def cascade_file(path, x_val: np.ndarray, y_val: np.ndarray, x_check: np.ndarray,
                 budget: float = BUDGET, atol: float = 1e-5, held: dict | None = None
                 ) -> Cascade:
    """Fit the cascade of the id model at `path` on the held-out reviews (x_val, y_val),
    or on `held` (the run's HEAD_HELD_OUT: the logits of heads that had not seen them and
    the joined probabilities with those), check both its paths on `x_check`,
    and replace the file (via a temporary name)."""
    import onnx

    from rnncli.export.check import full_check, session
    from rnncli.fsutil import atomic_path

    proto = onnx.load(str(path))
    model, head = session(proto), session(head_model(proto))
    if held is None:
        cascade = fit_cascade(_scores(head, x_val), _scores(model, x_val), y_val, budget)
    else:
        cascade = fit_cascade(held["head"], held["joined"], held["labels"], budget)
    new = add_cascade(proto, cascade)
    full_check(new, f"The cascade of {path}", "a bug in rnncli; `--no-cascade` exports "
               "without it.")
    check_cascade(model, head, session(new), x_check, cascade, atol)
    with atomic_path(path) as tmp:
        onnx.save(new, str(tmp))
    return cascade


def cascade_exported(paths: list, model, cfg, prep, home, x_check: np.ndarray,
                     budget: float = BUDGET, atol: float = 1e-5,
                     say=lambda what: None, held_out=None) -> dict:
    """Add the cascade to each exported id model in `paths` (the float file and the int8
    one), each fitted on the run's validation share: {path: its Cascade as a dict}, or
    {"skipped": why} when the model cannot have one. Nothing for a model without a head.
    `held_out`: the run's HEAD_HELD_OUT file, where its head was fitted on the validation
    share too (--ngram-refit): the cascade is fitted on what the cross-fitted heads made of
    those reviews instead (the same for both files)."""
    from rnncli.data import store as dataset
    from rnncli.errors import DataError
    from rnncli.model.ngram import has_head

    if not has_head(model):
        return {}
    if prep.classes != 2:
        return {"skipped": f"the cascade is for models of 2 labels, this one has "
                           f"{prep.classes}"}
    if cfg is None:
        return {"skipped": "no config.json beside the model to find its validation share"}
    try:
        _, _, x_val, y_val = dataset.training_shares(home, cfg.data)
    except DataError:
        return {"skipped": f"no prepared {cfg.data.dataset or 'IMDB'} data to fit it on: "
                           "`rnncli data fetch`, then export again"}
    held = None
    if held_out is not None and held_out.exists():
        import zipfile

        try:
            with np.load(held_out) as f:
                held = {k: f[k] for k in ("head", "joined", "labels")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return {"skipped": f"{held_out.name} cannot be read: train the run again, or "
                               "export with --no-cascade"}
        if len(held["labels"]) != len(y_val) or not np.array_equal(held["labels"] > 0.5,
                                                                    y_val > 0.5):
            return {"skipped": f"{held_out.name} is not of this validation share: train the "
                               "run again, or export with --no-cascade"}
    done = {}
    for path in paths:
        say(f"cascade: fitting {path.name} on {len(x_val):,} validation reviews"
            + (" (the cross-fitted heads' logits)" if held else "") + ", checking both paths")
        try:
            done[str(path)] = asdict(cascade_file(path, x_val, y_val, x_check, budget, atol,
                                                  held))
        except GraphUnsupported as exc:
            return {"skipped": f"{exc} ({path.name})"}
    return done
