import numpy as np
import pytest

from rnncli.text import tokenizer as text


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


# ---------------------------------------------------------------- the batch path is tokenize

EDGE_CASES = [
    "", " ", "\t\n  \r\f\v", "\x1c\x1d\x1e\x1f\x85\xa0\u2028", "word",
    "A <br />great<br/> FILM!", "<b>bold</b> and <i", "unclosed < bracket", "> alone <",
    "<<nested>> <a href='x'>link</a>", "a<>b", "< br / >x",
    "Don't stop; it's the director's cut.", "Don\u2019t \u2018quoted\u2019", "`tick` it`s",
    "'a'", "''", "a''b", "a'b'c'", "rock'n'roll", "'tis o' the", "x'_y", "a'<br>b",
    "snake_case __dunder__ _", "10/10, 3.5 stars, 1,000,000 and 2nd",
    "\u00b2 \u00bd \u0663\u0664",  # superscript, fraction, Arabic-Indic digits
    "\u6620\u753b\u306f\u7d20\u6674\u3089\u3057\u3044\u3002\u30a2\u30cb\u30e1",  # CJK
    "\ud55c\uad6d\uc5b4 \ub9ac\ubdf0",  # Hangul
    "great \U0001F600\U0001F44D\U0001F3FD film \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\u0641\u064a\u0644\u0645 \u0631\u0627\u0626\u0639!",  # Arabic (RTL)
    "\u05e1\u05e8\u05d8 \u05d8\u05d5\u05d1 \u202eevil\u202c",  # Hebrew, bidi override
    "\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u0399\u0391\u03a3. \u03a3",  # final sigma
    "\u0130stanbul I\u0307", "\u212a kelvin \u01c5 \uff21\uff22\uff23",
    "cafe\u0301 na\u00efve \u0928\u092e\u0938\u094d\u0924\u0947",  # combining marks
    "nul\x00inside\x00", "\x01ctrl\x01", "\x00", "tab\there", "Ame\u0301lie (2001) was 10/10",
]


def _reference_ids(texts, vocab, num_words=None):
    return [vocab.encode(text.tokenize(t), num_words) for t in texts]


def _assert_batch_matches(texts):
    assert text.tokenize_many(texts) == [text.tokenize(t) for t in texts]
    words = sorted({w for t in texts for w in text.tokenize(t)})
    vocab = text.Vocabulary(words)  # every word its own id: equal ids mean equal words
    for num_words in (None, 3 + len(words) // 2):
        flat, lengths = vocab.encode_many(texts, num_words)
        ref = _reference_ids(texts, vocab, num_words)
        assert lengths.tolist() == [len(r) for r in ref]
        assert flat.tolist() == [i for r in ref for i in r]
        assert flat.dtype == np.int32


def test_tokenize_many_is_tokenize_on_edge_cases():
    _assert_batch_matches(EDGE_CASES)
    _assert_batch_matches(EDGE_CASES[::-1])
    # Neighbours in a batch must not reach into each other (markup, sigma, apostrophes).
    for a in EDGE_CASES:
        for b in EDGE_CASES:
            assert text.tokenize_many([a, b]) == [text.tokenize(a), text.tokenize(b)], (a, b)


def test_tokenize_many_is_tokenize_on_every_short_string():
    """Every string of up to 4 characters over an alphabet with one character of each kind
    the batch path treats apart: word (ASCII, upper case, non-ASCII, combining), apostrophes,
    markup brackets, NUL and \\x01, sigma, space and punctuation."""
    import itertools

    alphabet = "aA'_ <>`\x00\x01\u03a3\u2019\u00e9.1\u0301"
    texts = ["".join(p) for n in range(5) for p in itertools.product(alphabet, repeat=n)]
    _assert_batch_matches(texts)
    _assert_batch_matches([t for t in texts if t.isascii()])


def test_tokenize_many_is_tokenize_on_random_texts():
    rng = np.random.default_rng(7)
    pieces = ["the", "Film", " ", "  ", "'", "\u2019", "`", "_", "<br />", "<", ">", ".", ",",
              "don't", "10", "\u00e9", "\u03a3", "\u6620\u753b", "\U0001F600", "\u05d8\u05d5\u05d1",
              "\u0301", "\n", "\x00", "!", "I", "\u0130"]
    texts = ["".join(rng.choice(pieces, size=rng.integers(0, 40))) for _ in range(3000)]
    _assert_batch_matches(texts)
    for lo in range(0, 3000, 700):  # batches that are all ASCII, all not, or mixed
        _assert_batch_matches(texts[lo : lo + 700])


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [1, 2, 5, 9])
def test_pad_segments_is_pad_sequences(padding, truncating, maxlen):
    rng = np.random.default_rng(maxlen)
    seqs = [rng.integers(3, 50, size=n).astype(np.int32) for n in (0, 1, 3, 4, 5, 8, 12, 0)]
    flat = np.concatenate(seqs)
    lengths = np.array([len(s) for s in seqs])
    starts = np.cumsum(lengths) - lengths
    order = rng.permutation(len(seqs))
    got = text.pad_segments(flat, starts[order], lengths[order], maxlen, padding, truncating)
    want = text.pad_sequences([seqs[i] for i in order], maxlen, padding, truncating)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int32


# ---------------------------------------------------------------- the part a model reads

def _assert_part_keeps_the_end(review: str, words: int, side: str) -> bool:
    """readable_part's tokens are the review's tokens at that end; True if it cut."""
    part = text.readable_part(review, words, side)
    if part is None:
        return False
    whole, got = text.tokenize(review), text.tokenize(part)
    assert len(got) <= len(whole)
    if side == "pre":
        assert got == whole[len(whole) - len(got):], (review, part)
    else:
        assert got == whole[: len(got)], (review, part)
    return True


@pytest.mark.parametrize("side", ["pre", "post"])
def test_a_readable_part_has_the_whole_reviews_tokens_at_its_end(side):
    rng = np.random.default_rng(11)
    pieces = ["the", "Film", " ", "  ", "'", "\u2019", "_", "<br />", "< ", "<a href='x y'>",
              "<", ">", " >", ".", "don't", "\u00e9", "\u03a3", " \u03a3", "\u03a3 ",
              "\u6620\u753b", "\n", "\x00", "I", "\u0130", "a'", " 'b"]
    cuts = 0
    for _ in range(4000):
        review = "".join(rng.choice(pieces, size=rng.integers(0, 80)))
        cuts += _assert_part_keeps_the_end(review, int(rng.integers(1, 8)), side)
    for review in EDGE_CASES:
        for words in (1, 2):
            cuts += _assert_part_keeps_the_end(review * 6, words, side)
    assert cuts > 2000  # the cut path itself was exercised


def test_a_part_is_not_cut_inside_a_tag_that_spans_spaces():
    review = "great " * 3 + "<a href='awful awful awful'>" + " film" * 2
    part = text.readable_part(review, 2, "pre")
    assert part is None or "awful" not in text.tokenize(part)
    assert text.readable_part("x" * 500, 3, "pre") is None  # no space to cut at
    assert text.readable_part("short one", 3, "pre") is None
