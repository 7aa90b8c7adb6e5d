"""What both sides of an rnncli ONNX file agree on: its input and output names and the
metadata keys serving reads. Serving owns these names; export reads them from here, so
serving never imports the code that builds graphs.

    session.run([OUTPUT], {INPUT: ids})          # an id model
    session.run([OUTPUT, KNOWN_OUTPUT], {TEXT_INPUT: texts})   # a text-input model
"""

from __future__ import annotations

INPUT = "ids"  # int32 [batch, steps], padded on the model's side
# float [batch, 1] of the positive class (2 labels), or [batch, K] of each label (K > 2)
OUTPUT = "probability"
TEXT_INPUT = "text"  # string [batch]: `export onnx --text-input` graphs tokenize in-graph
KNOWN_OUTPUT = "known_words"  # int64 [batch]: words of each review the vocabulary knows
LABEL_OUTPUT = "label"  # string [batch], so a client needs neither metadata nor threshold
# string [K], the label names by output column: text graphs of K > 2 labels only, for
# clients that cannot read metadata (onnxruntime-node)
LABELS_OUTPUT = "labels"
# float scalar, optional: the cascade's threshold on the head's |logit| (export/cascade.py).
# Its default is in the graph; serving feeds +inf to run the network on every review.
CASCADE_INPUT = "cascade_threshold"

# Metadata: every key starts with PREFIX; the preprocessing (vocabulary, maxlen, padding
# side, labels) is stored under it too (text/preprocessing.py).
PREFIX = "rnncli."
GRAPH = PREFIX + "graph"  # the graph kind: hybrid, native, unrolled, tf2onnx, ...
SKIPS_PAD_STEPS = PREFIX + "skips_pad_steps"  # "true" when shorter rows run fewer steps
FULL_LENGTH_BATCH = PREFIX + "full_length_batch"  # larger batches run at full length
INPUT_KIND = PREFIX + "input"  # TEXT_INPUT for a text-input graph
# The oldest onnxruntime that reads the file (its IR version and opset), as the export saw it.
MIN_ONNXRUNTIME = PREFIX + "min_onnxruntime"
TEST_ACCURACY = PREFIX + "test_accuracy"  # `export onnx --record-test`: on the test split
TEST_REVIEWS = PREFIX + "test_reviews"  # how many test reviews that accuracy is on
CASCADE = PREFIX + "cascade"  # JSON: the cascade's head calibration, threshold, figures


def recorded_accuracy(metadata: dict[str, str]) -> float | None:
    """TEST_ACCURACY when it is a number in [0, 1]: metadata is untrusted text."""
    try:
        accuracy = float(metadata.get(TEST_ACCURACY, "nan"))
    except ValueError:
        return None
    return accuracy if 0 <= accuracy <= 1 else None
