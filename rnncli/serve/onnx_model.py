"""Serving: an onnxruntime session plus the model's own preprocessing. Never imports TensorFlow.

    model = OnnxModel(Path("artifacts/model.onnx"))
    model.predict_texts(["a great film"])   # [Prediction(label='positive', ...)]

A binary model (2 labels) gives one probability per review, of its second label; a model of
K > 2 labels gives K, one per label, summing to 1, and predicts the most probable label.
probabilities arrays follow that: [n] for a binary model, [n, K] otherwise.

A graph whose metadata says it takes rows shorter than maxlen (`rnncli.trim_padding`) runs
each batch only as many steps as the batch's longest review needs. Streams sort a window of
reviews by length, so that similar lengths share a batch, and give results back in input
order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

import numpy as np

from rnncli.errors import ModelError, UsageError
from rnncli.serve import contract
from rnncli.serve.windows import encoded_windows, windows
from rnncli.text.preprocessing import FEW, REEXPORT, Encoded, Preprocessing

WINDOW_BATCHES = 16  # a stream sorts this many batches' worth of reviews by length
MIN_WINDOW = 1024  # and at least this many: what a worker process gets per task


@dataclass
class Prediction:
    text: str
    label: str | None  # None for a blank text (rnncli.load().predict, `rnncli predict`)
    # Binary: of the positive class; K > 2 labels: of `label`, the most probable one.
    # None with the label.
    probability: float | None
    known_words: int
    # Every label's probability, in the model's label order, only when asked for
    # (all_probabilities=True; for a binary model {negative: 1 - p, positive: p}): a dict
    # per review is a cost most callers do not want. None with the label.
    probabilities: dict[str, float] | None = None


def session_options(threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One thread per call: these graphs are chains of small ops that gain little from
    # intra-op threads; large inputs are split across calls instead (run_batches).
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Spinning threads burn a core between calls; a CLI process gains nothing from it.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Errors only: onnxruntime warns on stderr, at every start, that the cascade's threshold
    # (an initializer a caller may replace, export/cascade.py) is not folded as a constant.
    opts.log_severity_level = 3
    return opts


def default_workers() -> int:
    """Threads (and encoding processes) of a large input: the cores this process may use
    (its affinity and CPU quota, not the machine's count), at most 8."""
    from rnncli.system import usable_cores

    return min(usable_cores(), 8)


def map_concurrently(fn: Callable, items: Sequence, workers: int) -> list:
    """[fn(i) for i in items], on up to `workers` threads: onnxruntime releases the GIL, so
    model calls on several batches use several cores."""
    if workers == 1 or len(items) < 2:
        return [fn(i) for i in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def run_batches(session, x: np.ndarray, batch_size: int, workers: int, input_name: str,
                output_name: str) -> np.ndarray:
    """Run `x` in batches, concurrently with workers > 1: the outputs flattened."""
    def run(chunk):
        return session.run([output_name], {input_name: chunk})[0].reshape(-1)

    if len(x) == 0:
        return np.zeros(0, np.float32)
    chunks = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
    return np.concatenate(map_concurrently(run, chunks, workers))


# A model call costs about as much as this many more review-steps (onnxruntime's fixed
# work per call against one recurrent step of one review, measured on the bundled GRU).
CALL_STEPS = 32
# Padding a batch may add this share of its real steps before it is cut in two.
PAD_SLACK = 1 / 8
# Ids (rows x width) one model call may hold. onnxruntime keeps every step's activations of
# a call: the bundled bi-GRU took 1.9 MB more per 500-id review (batch 256: +480 MB), and
# each worker thread runs a call of its own. `predict --file` on the 25,000 test reviews
# peaked at 1,274 MB with batches of 256, and at 546 / 348 / 247 MB with calls of at most
# 32,768 / 16,384 / 8,192 ids, the smallest using no more CPU (20.2 s against 21.7 s): a
# call of 16 full reviews is still thousands of steps, and short reviews keep batches of 256.
MAX_CALL_TOKENS = 8_192


def plan_batches(lengths: np.ndarray, batch_size: int, maxlen: int, trim: bool,
                 full_length_batch: int | None = None, max_tokens: int | None = None
                 ) -> list[tuple[np.ndarray | slice, int]]:
    """(rows, width) of each model call for reviews of `lengths` ids (start marker not counted).

    Without `trim` the graph takes only maxlen-wide rows: batches in input order. With it,
    reviews are sorted by length and each batch is padded to its own longest review, and a
    batch ends early where padding to the next review would cost more steps than another
    call (a recurrent op runs every row to the batch's width). Batches larger than
    `full_length_batch` run at full length, which such a graph runs faster. No call holds
    more than `max_tokens` (default MAX_CALL_TOKENS) rows x width, whatever `batch_size`.
    """
    n = len(lengths)
    budget = MAX_CALL_TOKENS if max_tokens is None else max_tokens
    if not trim:
        size = max(1, min(batch_size, budget // maxlen))
        return [(slice(i, min(i + size, n)), maxlen) for i in range(0, n, size)]
    order = np.argsort(lengths, kind="stable")
    widths = np.minimum(maxlen, 1 + np.asarray(lengths, np.int64)[order])
    plan = []
    start = 0
    while start < n:
        w = widths[start : start + batch_size]
        real = np.cumsum(w)
        rows_so_far = np.arange(1, len(w) + 1)
        padded = rows_so_far * w
        over = np.flatnonzero((padded - real > CALL_STEPS + real * PAD_SLACK)
                              | (rows_so_far * np.maximum(w, 1) > budget))
        end = start + max(1, int(over[0]) if len(over) else len(w))
        rows = order[start:end]
        full = full_length_batch is not None and len(rows) > full_length_batch
        plan.append((rows, maxlen if full else int(widths[end - 1])))
        start = end
    return plan


class OnnxModel:
    """An rnncli ONNX model: its session and the preprocessing stored in its metadata."""

    def __init__(self, path: Path, workers: int | None = None, cascade: bool = True):
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise ModelError(f"No model at {path}: run `rnncli export onnx` first.")
        try:
            self.session = ort.InferenceSession(str(path), session_options(),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            if "external data" in str(exc).lower():  # weights kept in a file beside it
                raise ModelError(f"Cannot load {path}: its weights file is missing or outside "
                                 f"its folder ({_first_line(exc)}); copy the .data file it "
                                 "names along with it.") from None
            from rnncli.serve.compat import needed_runtime

            need = needed_runtime(path, ort.__version__, str(exc))
            if need:
                raise ModelError(f"Cannot load {path}: {need}.") from None
            raise ModelError(f"Cannot load {path}: not a valid ONNX model ({_first_line(exc)}); "
                             f"{REEXPORT}.") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if not any(k.startswith(contract.PREFIX) for k in props):
            raise ModelError(f"{path} has no rnncli metadata (vocabulary, maxlen): export it "
                             "with `rnncli export onnx`.")
        self.path = path
        self.workers = workers or default_workers()
        self.metadata = dict(props)
        self.preprocessing = prep = Preprocessing.from_metadata(props, str(path))
        # `export onnx --text-input` graphs tokenize in the graph (rnncli.text_input).
        self.takes_text = self.session.get_inputs()[0].type == "tensor(string)"
        # Probabilities per review: 1 for 2 labels, else one per label.
        self.width = 1 if prep.classes == 2 else prep.classes
        self.input_name, self.output_name = self._check_signature(prep)
        # Graph facts come from metadata alone: no graph is inspected at serving time.
        self.trim = prep.trim_padding
        self.full_length_batch = self._full_length_batch()
        self.feeds = self._cascade_feeds(cascade)

    def _check_signature(self, prep: Preprocessing) -> tuple[str, str]:
        """Names of the one int32 [batch, steps] input and the one float output (a text
        model: the one string [batch] input and its first output, a float)."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if self.takes_text:
            if len(shape) != 1 or not outputs or outputs[0].type != "tensor(float)":
                raise ModelError(f"{self.path} takes text but not as one string [batch] input "
                                 f"giving a float output first: {REEXPORT}.")
            self._check_width(outputs[0].shape, prep)
            return inputs[0].name, outputs[0].name
        if (len(inputs) != 1 or inputs[0].type != "tensor(int32)" or len(shape) != 2
                or len(outputs) != 1 or outputs[0].type != "tensor(float)"):
            got = ", ".join(f"{i.type} {i.shape}" for i in inputs) or "nothing"
            gives = ", ".join(o.type for o in outputs) or "nothing"
            raise ModelError(f"{self.path} carries rnncli metadata but its graph takes {got} "
                             f"and gives {gives}, not one int32 [batch, steps] input and one "
                             f"float output: {REEXPORT}.")
        self._check_width(outputs[0].shape, prep)
        steps = shape[1]
        if isinstance(steps, int) and (steps != prep.maxlen or prep.trim_padding):
            raise ModelError(f"{self.path}: the graph takes {steps} steps, its metadata says "
                             f"maxlen {prep.maxlen}"
                             f"{' and shorter rows' if prep.trim_padding else ''}: {REEXPORT}.")
        return inputs[0].name, outputs[0].name

    def _check_width(self, shape: list, prep: Preprocessing) -> None:
        """The graph's probabilities per review against the labels its metadata names."""
        width = shape[-1] if len(shape) == 2 else 1 if len(shape) == 1 else None
        if isinstance(width, int) and width != self.width:
            raise ModelError(f"{self.path} gives {width} probabilities per review, but its "
                             f"metadata names {prep.classes} labels ({_listed(prep.labels)}), "
                             f"which need {self.width}: {REEXPORT}.")

    @property
    def has_cascade(self) -> bool:
        """The graph holds a cascade (export/cascade.py): its n-gram head decides the
        reviews it is sure of, and the network runs on the rest."""
        return contract.CASCADE in self.metadata

    def _cascade_feeds(self, cascade: bool) -> dict:
        """Inputs fed beside the reviews: none, or with `cascade` False on a model that has
        one, a threshold no review reaches, so the network runs on every review."""
        if cascade or not self.has_cascade:
            return {}
        names = {i.name for i in self.session.get_overridable_initializers()}
        if contract.CASCADE_INPUT not in names:
            raise ModelError(f"{self.path} names a cascade in its metadata but its graph has "
                             f"no {contract.CASCADE_INPUT} to turn it off: {REEXPORT}.")
        return {contract.CASCADE_INPUT: np.array(np.inf, np.float32)}

    def _full_length_batch(self) -> int | None:
        value = self.metadata.get(contract.FULL_LENGTH_BATCH)
        if value is None:
            return None
        if not value.isdigit():
            raise ModelError(f"{self.path} metadata: {contract.FULL_LENGTH_BATCH} is {value!r}, "
                             f"not a whole number: {REEXPORT}.")
        return int(value)

    @property
    def labels(self) -> list[str]:
        return list(self.preprocessing.labels)

    def _empty(self, n: int) -> np.ndarray:
        return np.empty((n,) if self.width == 1 else (n, self.width), np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            out = self.session.run([self.output_name], {self.input_name: x, **self.feeds})[0]
        except Exception as exc:  # a graph that loads but fails on its own input
            raise ModelError(f"{self.path} failed on a batch of {x.shape} ids "
                             f"({_first_line(exc)}): {REEXPORT}.") from None
        if out.size != len(x) * self.width:
            raise ModelError(f"{self.path} gave {out.size} outputs for {len(x)} reviews"
                             + (f" of {self.width} labels" if self.width > 1 else "")
                             + f": {REEXPORT}.")
        return check_probabilities(out.reshape(self._empty(len(x)).shape), self.path)

    def check_threshold(self, threshold: float | None) -> None:
        """Refuse a threshold for a model of K > 2 labels: it predicts the most probable."""
        if threshold is not None and self.width > 1:
            raise UsageError(f"--threshold is for a model of 2 labels; {self.path.name} has "
                             f"{len(self.labels)} ({_listed(self.labels)}) and predicts the "
                             "most probable one: drop --threshold.")

    def text_probabilities(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [n] or [n, K], known-word counts) of a text-input model: every
        call of such a model goes through here, as every call of an id model goes through
        _run."""
        from rnncli.serve.text_input import run_text_model

        probs, known = run_text_model(self.session, texts, self.workers, self.width,
                                      self.feeds)
        return check_probabilities(probs, self.path), known

    def predict_ids(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Probabilities ([n], or [n, K] for K > 2 labels) for an already padded int32 id
        matrix."""
        if self.takes_text:
            raise ModelError(f"{self.path} takes review text, not ids: use predict_texts.")
        if len(x) == 0:
            return self._empty(0)
        chunks = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
        return np.concatenate(map_concurrently(self._run, chunks, self.workers))

    def encode(self, texts: list[str]) -> Encoded:
        """Reviews as the graph's input before batching; the one step (with _run and
        _check_signature) a model kind with another input would change. Runs in worker
        processes on large inputs."""
        return self.preprocessing.encode_flat(texts)

    def probabilities(self, encoded: Encoded, batch_size: int = 256) -> np.ndarray:
        """Probabilities of encoded reviews, in their order, batched by length."""
        prep = self.preprocessing
        plan = plan_batches(encoded.lengths, batch_size, prep.maxlen, self.trim,
                            self.full_length_batch)
        outs = map_concurrently(lambda item: self._run(prep.pad(encoded, *item)), plan,
                                self.workers)
        probs = self._empty(len(encoded.lengths))
        for (rows, _), out in zip(plan, outs):
            probs[rows] = out
        return probs

    def scores(self, texts: Sequence[str], batch_size: int = 256
               ) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [n] or [n, K], known-word counts) of `texts`, however the model
        takes them."""
        if not texts:
            return self._empty(0), np.zeros(0, np.int64)
        if self.takes_text:
            return self.text_probabilities(list(texts))
        if len(texts) <= FEW:  # the latency path: one call, no sorting
            prep = self.preprocessing
            trim = self.trim and (self.full_length_batch is None
                                  or len(texts) <= self.full_length_batch)
            x, known = prep.encode(texts, trim=trim)
            return self._run(x), known
        encoded = self.encode(list(texts))
        return self.probabilities(encoded, batch_size), encoded.known

    def predict_texts(self, texts: Sequence[str], threshold: float | None = None,
                      batch_size: int = 256,
                      all_probabilities: bool = False) -> list[Prediction]:
        self.check_threshold(threshold)
        if not texts:
            return []
        return self._predictions(texts, *self.scores(texts, batch_size), threshold,
                                 all_probabilities)

    def predict_stream(self, texts: Iterable[str], batch_size: int = 256,
                       threshold: float | None = None, window: int | None = None,
                       all_probabilities: bool = False) -> Iterator[Prediction]:
        """Predict an iterable of any length, a window of reviews at a time (memory stays
        bounded), in input order; large inputs are encoded across processes."""
        self.check_threshold(threshold)
        return self._stream(texts, batch_size, threshold, window, all_probabilities)

    def _stream(self, texts: Iterable[str], batch_size: int, threshold: float | None,
                window: int | None, all_probabilities: bool) -> Iterator[Prediction]:
        window = window or max(MIN_WINDOW, WINDOW_BATCHES * batch_size)
        if self.takes_text:  # the graph tokenizes: nothing to encode ahead
            for chunk in windows(texts, window):
                yield from self.predict_texts(chunk, threshold, all_probabilities=all_probabilities)
            return
        chunks = windows(texts, window)
        head = list(islice(chunks, 2))
        windows_in = encoded_windows(self.encode, chain(head, chunks), self.workers)
        if self.workers == 1 or len(head) < 2:  # nothing to overlap: no thread to start
            for chunk, encoded in windows_in:
                yield from self._predictions(chunk, self.probabilities(encoded, batch_size),
                                             encoded.known, threshold, all_probabilities)
            return
        # One window ahead: its model calls (which release the GIL) run while this thread
        # hands out the previous window's results and encodes the next window.
        from concurrent.futures import ThreadPoolExecutor

        def done(chunk, known, probs) -> list[Prediction]:
            return self._predictions(chunk, probs.result(), known, threshold,
                                     all_probabilities)

        with ThreadPoolExecutor(1) as ahead:
            pending = None
            for chunk, encoded in windows_in:
                running = (chunk, encoded.known,
                           ahead.submit(self.probabilities, encoded, batch_size))
                if pending:
                    yield from done(*pending)
                pending = running
            if pending:
                yield from done(*pending)

    def labels_of(self, probs: np.ndarray, threshold: float | None = None) -> list[str]:
        """The label of each row of `probs`: at or above the threshold the positive one (2
        labels), else the most probable (the first of equal ones)."""
        labels = self.preprocessing.labels
        if self.width > 1:
            return [labels[i] for i in np.argmax(probs, axis=1).tolist()]
        threshold = self.preprocessing.threshold if threshold is None else threshold
        negative, positive = labels
        return [positive if p >= threshold else negative for p in probs.tolist()]

    def _predictions(self, texts: Sequence[str], probs: np.ndarray, known: np.ndarray,
                     threshold: float | None,
                     all_probabilities: bool = False) -> list[Prediction]:
        names = self.labels_of(probs, threshold)
        if self.width == 1:
            chosen = probs.tolist()
            rows = [[1 - p, p] for p in chosen] if all_probabilities else None
        else:
            chosen = probs[np.arange(len(probs)), np.argmax(probs, axis=1)].tolist()
            rows = probs.tolist() if all_probabilities else None
        if rows is None:
            return [Prediction(t, n, p, k)
                    for t, n, p, k in zip(texts, names, chosen, known.tolist())]
        labels = self.labels
        return [Prediction(t, n, p, k, dict(zip(labels, row)))
                for t, n, p, k, row in zip(texts, names, chosen, known.tolist(), rows)]


# How far a row of K probabilities may sum from 1: float32 softmax sums are within 1e-6.
ROW_SUM_TOLERANCE = 1e-3


def check_probabilities(probs: np.ndarray, model: Path | str,
                        remedy: str = "retrain it, or re-export it with `rnncli export onnx`"
                        ) -> np.ndarray:
    """`probs` ([n], or [n, K] with one row per review), if every value is a probability
    and every row of K sums to 1: a model that gives NaN, an infinity or a number outside
    [0, 1] is broken (a diverged training, a wrong graph), and no label or score may be
    made from it."""
    ok = (probs >= 0) & (probs <= 1)  # NaN fails both comparisons
    if not ok.all():
        bad = probs[~ok]
        raise ModelError(f"{model} gave {float(bad[0])!r} as a probability, not a number "
                         f"between 0 and 1: the model is broken; {remedy}.")
    if probs.ndim == 2 and probs.shape[1] > 1 and len(probs):
        sums = probs.sum(axis=1, dtype=np.float64)
        off = np.abs(sums - 1) > ROW_SUM_TOLERANCE
        if off.any():
            raise ModelError(f"{model} gave probabilities summing to {float(sums[off][0]):.4g} "
                             f"for one review, not 1 over its {probs.shape[1]} labels: the "
                             f"model is broken; {remedy}.")
    return probs


def _listed(labels: Sequence[str], most: int = 5) -> str:
    """Label names for a one-line message: the first few of a long list."""
    return ", ".join(labels[:most]) + (f", ... {len(labels) - most} more"
                                       if len(labels) > most else "")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__
