import numpy as np
import pytest

from rnncli import text


@pytest.mark.parametrize(
    "raw, words",
    [
        ("A <br />great<br/> FILM!", ["a", "great", "film"]),
        ("Don't stop; it's the director's cut.",
         ["don't", "stop", "it's", "the", "director's", "cut"]),
        ("Don\u2019t", ["don't"]),
        ("'quoted' words -- and dashes...", ["quoted", "words", "and", "dashes"]),
        ("Amélie (2001) was 10/10", ["amélie", "2001", "was", "10", "10"]),
        ("snake_case and under_score", ["snake", "case", "and", "under", "score"]),
        ("", []),
    ],
)
def test_tokenize(raw, words):
    assert text.tokenize(raw) == words


def test_vocabulary_follows_keras_ids():
    vocab = text.Vocabulary(["the", "film", "great"])
    assert vocab.index == {"the": 3, "film": 4, "great": 5}
    assert vocab.encode(["great", "unseen", "the"]) == [5, text.OOV, 3]
    # num_words cuts words whose id is not below it, as Keras's loader does.
    assert vocab.encode(["great", "film"], num_words=5) == [text.OOV, 4]
    assert vocab.decode([1, 3, 4, 2, 0, 99]) == "? the film ? ? ?"
    assert text.Vocabulary.from_text(vocab.to_text()).words == vocab.words
    assert vocab.truncated(5).words == ["the", "film"]


def _reference_pad(seqs, maxlen, padding, truncating):
    """Keras's pad_sequences applied to [start] + seq, written the obvious way."""
    out = np.zeros((len(seqs), maxlen), np.int32)
    for i, s in enumerate(seqs):
        s = [text.START] + list(s)
        s = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "pre":
            out[i, maxlen - len(s):] = s
        else:
            out[i, : len(s)] = s
    return out


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [1, 2, 5, 9])
def test_pad_sequences_matches_keras_rule(padding, truncating, maxlen):
    rng = np.random.default_rng(maxlen)
    seqs = [rng.integers(3, 50, size=n).astype(np.int32) for n in (0, 1, 3, 4, 5, 8, 12)]
    got = text.pad_sequences(seqs, maxlen, padding, truncating)
    np.testing.assert_array_equal(got, _reference_pad(seqs, maxlen, padding, truncating))


def test_pad_sequences_rejects_bad_sides():
    with pytest.raises(ValueError, match="padding"):
        text.pad_sequences([[3]], 4, padding="middle")
    with pytest.raises(ValueError, match="maxlen"):
        text.pad_sequences([[3]], 0)
