"""The n-gram teacher and the teacher mix, on synthetic id rows (no TensorFlow)."""

import numpy as np
import pytest
from conftest import ORDER_NUM_WORDS, ORDER_WORDS, word_order_rows

from rnncli.model.ngram import row_keys
from rnncli.text import tokenizer as text
from rnncli.train.teachers import TeacherMix, fit_ngram_teacher

pytest.importorskip("sklearn")
NUM_WORDS = ORDER_NUM_WORDS
A, B = ORDER_WORDS


def test_keys_tell_words_from_pairs_and_drop_pads_and_the_start_marker():
    keys = row_keys(np.array([0, 0, text.START, 5, 6, 5], np.int32), NUM_WORDS, keys="exact")
    assert sorted(keys.tolist()) == sorted([5 * 20, 6 * 20, 5 * 20, 5 * 20 + 6, 6 * 20 + 5])


def test_word_order_is_learned_and_padding_does_not_matter():
    rows, y = word_order_rows(400, seed=0)
    teacher = TeacherMix([], fit_ngram_teacher(rows, y, NUM_WORDS), weight=1.0)
    test_rows, test_y = word_order_rows(100, seed=1)
    x_pre = text.pad_sequences(test_rows, 16, "pre", "pre")
    x_post = text.pad_sequences(test_rows, 16, "post", "post")
    p = teacher.predict_on_batch(x_pre)
    # Only the pairs decide: a model of word counts alone would be at chance.
    assert ((p > 0.5) == (test_y > 0.5)).mean() > 0.95
    np.testing.assert_allclose(teacher.predict_on_batch(x_post), p, rtol=1e-6)
    longest = max(map(len, test_rows))
    np.testing.assert_allclose(teacher.predict_on_batch(x_pre[:, 16 - longest:]), p, rtol=1e-6)
    assert p.dtype == np.float32 and p.shape == (100,)


def test_an_ngram_seen_in_one_review_only_is_left_out():
    rows = [np.array([text.START, 7, 8], np.int32), np.array([text.START, 7, 9], np.int32),
            np.array([text.START, 7, 8, 10], np.int32)]
    teacher = fit_ngram_teacher(rows, np.array([1, 0, 1], np.float32), NUM_WORDS)
    assert teacher.keys_.tolist() == [7 * 20, 7 * 20 + 8, 8 * 20]


class Constant:
    def __init__(self, p):
        self.p = p

    def predict_on_batch(self, x):  # a teacher run (Keras)
        return np.full((len(x), 1), self.p, np.float32)

    def predict_proba(self, x):  # the n-gram teacher (NgramModel)
        return np.tile([1 - self.p, self.p], (len(x), 1))


def test_the_mix_weighs_the_ngram_teacher_against_the_models_mean():
    x = np.zeros((3, 4), np.int32)
    mix = TeacherMix([Constant(0.2), Constant(0.4)], Constant(0.9), weight=0.25)
    np.testing.assert_allclose(mix.predict_on_batch(x), 0.75 * 0.3 + 0.25 * 0.9, rtol=1e-6)
    np.testing.assert_allclose(TeacherMix([], Constant(0.9), 0.25).predict_on_batch(x), 0.9)
    np.testing.assert_allclose(TeacherMix([Constant(0.2)]).predict_on_batch(x), 0.2)
