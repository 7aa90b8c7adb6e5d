"""Validation that holds out whole movies: the movies fetch stores, and the shares."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import add_bytes, synthetic_reviews, write_archive

from rnncli.config import settings as config
from rnncli.data import fetch, store


def settings(hold_out: str, share: float = 0.25) -> SimpleNamespace:
    return SimpleNamespace(dataset=None, num_words=100, maxlen=20, padding="pre",
                           truncating="pre", limit=None, validation_split=share,
                           hold_out=hold_out)


def movie_of(split: str, label: str, rid: int) -> int:
    """A made-up title number: three reviews a movie, per split and label."""
    return {"train": 1000, "test": 5000}[split] + {"pos": 0, "neg": 500}[label] + rid // 3


def archive_with_urls(path, rows, lines=None):
    def urls(tar):
        for split in ("train", "test"):
            for label in ("pos", "neg"):
                n = max(r[2] for r in rows if r[:2] == (split, label)) + 1
                text = lines(split, label, n) if lines else "".join(
                    f"http://www.imdb.com/title/tt{movie_of(split, label, i):07d}/usercomments\n"
                    for i in range(n))
                add_bytes(tar, f"aclImdb/{split}/urls_{label}.txt", text.encode())
    return write_archive(path, rows, extra=urls)


def test_fetch_stores_each_reviews_movie_from_the_urls_files(tmp_path):
    rows = synthetic_reviews(12)
    fetch.fetch(origin=str(archive_with_urls(tmp_path / "a.tar.gz", rows)))
    home = store.data_home(None)
    for split in ("train", "test"):
        got = store.load_split(home, split)
        want = [movie_of(split, ("neg", "pos")[lab], rid)
                for lab, rid in zip(got.labels, got.ids)]
        assert got.movies.tolist() == want


def test_a_line_without_a_title_and_an_archive_without_urls_give_no_movie(tmp_path):
    rows = synthetic_reviews(6)
    fetch.fetch(origin=str(archive_with_urls(
        tmp_path / "a.tar.gz", rows, lines=lambda s, lab, n: "no url here\n" * n)))
    assert (store.load_split(store.data_home(None), "train").movies == -1).all()
    fetch.fetch(origin=str(write_archive(tmp_path / "b.tar.gz", rows)))
    assert (store.load_split(store.data_home(None), "train").movies == -1).all()


def movie_split(seed: int = 0, count: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """`count` movies of 1-30 reviews each, k reviews as likely as 1/k (IMDB's train split:
    7.2 reviews a movie, at most 30), most leaning one way, their reviews shuffled."""
    rng = np.random.default_rng(seed)
    k = np.arange(1, 31)
    movies = np.repeat(np.arange(count), rng.choice(k, count, p=(1 / k) / (1 / k).sum()))
    lean = rng.random(count) < 0.5
    labels = (rng.random(len(movies)) < np.where(lean[movies], 0.85, 0.15)).astype(np.int8)
    order = rng.permutation(len(movies))
    return movies[order], labels[order]


def movie_size(movies: np.ndarray, held: np.ndarray) -> float:
    """Mean reviews of the movie of each held-out review."""
    _, inverse, counts = np.unique(movies, return_inverse=True, return_counts=True)
    return float(counts[inverse][held].mean())


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_held_out_takes_whole_movies_keeping_the_balance(seed):
    movies, labels = movie_split()
    n = len(movies) // 5
    held = store.held_out(movies, labels, n, seed)
    assert not set(movies[held]) & set(movies[~held])
    assert abs(held.sum() - n) <= 1
    assert abs(labels[held].mean() - labels.mean()) < 0.01
    if seed is None:
        assert held[-1]  # walking back: the last review's movie comes first
        # Unknown movies are one review each: with none known, the last n reviews.
        unknown = np.full(len(movies), -1, np.int32)
        assert (store.held_out(unknown, np.zeros(len(movies)), n)
                == (np.arange(len(movies)) >= len(movies) - n)).all()


def test_a_drawn_share_is_of_movies_like_the_split_and_the_seed_picks_it():
    sizes = {"split": [], "walk": [], "draw": []}
    for s in range(8):
        movies, labels = movie_split(s, count=1000)
        n = len(movies) // 5
        sizes["split"].append(movie_size(movies, np.ones(len(movies), bool)))
        sizes["walk"].append(movie_size(movies, store.held_out(movies, labels, n)))
        sizes["draw"].append(movie_size(movies, store.held_out(movies, labels, n, s)))
    split, walk, draw = (float(np.mean(v)) for v in sizes.values())
    # Walking back meets a movie of many reviews sooner; a draw takes movies as they come.
    assert walk > split + 2.5
    assert abs(draw - split) < 1.5
    movies, labels = movie_split()
    n = len(movies) // 5
    first = store.held_out(movies, labels, n, 1)
    assert (first == store.held_out(movies, labels, n, 1)).all()
    assert not (first == store.held_out(movies, labels, n, 2)).all()


def test_training_shares_hold_out_movies_or_the_last_share(tmp_path):
    rows = synthetic_reviews(24)
    fetch.fetch(origin=str(archive_with_urls(tmp_path / "a.tar.gz", rows)))
    home = store.data_home(None)
    split = store.load_split(home, "train")
    x_all, _ = store.load_encoded(split, 100, 20, "pre", "pre")
    x, y, x_val, y_val = store.training_shares(home, settings("movies"))
    assert len(x) + len(x_val) == len(split) and abs(len(x_val) - 12) <= 2
    assert y_val.mean() == 0.5
    where = {r.tobytes(): m for r, m in zip(x_all, split.movies)}
    assert not {where[r.tobytes()] for r in x} & {where[r.tobytes()] for r in x_val}
    *_, groups = store.training_shares(home, settings("movies"), groups=True)
    assert groups.tolist() == [where[r.tobytes()] for r in x_val]  # each review's movie
    x, _, x_val, _ = store.training_shares(home, settings("last"))
    assert (x_val == x_all[-12:]).all() and (x == x_all[:-12]).all()


def test_a_run_saved_before_hold_out_keeps_the_last_share():
    saved = config.RunConfig().to_dict()
    assert saved["data"].pop("hold_out") == "movies"
    assert config.RunConfig.from_dict(saved).data.hold_out == "last"
    saved["data"]["hold_out"] = "movies"
    assert config.RunConfig.from_dict(saved).data.hold_out == "movies"


def test_a_run_saved_before_the_draw_walks_back_as_it_did():
    saved = config.RunConfig().to_dict()
    assert saved["data"]["hold_out_seed"] == 0
    assert config.RunConfig.from_dict(saved).data.hold_out_seed == 0
    del saved["data"]["hold_out_seed"]
    assert config.RunConfig.from_dict(saved).data.hold_out_seed is None


def test_with_no_movie_known_validation_is_the_last_share(tmp_path):
    """An archive without urls_*.txt: every movie unknown, so --hold-out movies holds out
    the last share (not a label-balanced pick of single reviews)."""
    rows = synthetic_reviews(24)
    fetch.fetch(origin=str(write_archive(tmp_path / "a.tar.gz", rows)))
    home = store.data_home(None)
    x_all, _ = store.load_encoded(store.load_split(home, "train"), 100, 20, "pre", "pre")
    x, _, x_val, _, groups = store.training_shares(home, settings("movies"), groups=True)
    assert (x_val == x_all[-12:]).all() and (x == x_all[:-12]).all()
    assert len(set(groups.tolist())) == 12  # no movie known: each review a group of its own


def test_reviews_of_no_known_movie_store_minus_one():
    """An imported dataset's reviews (no urls files): every movie -1, so training_shares
    holds out its last share."""
    from rnncli.data import prepare
    from rnncli.data.archive import Review

    tokenized = prepare.tokenize_reviews(
        [Review("train", i % 2, i, -1, b"good film" if i % 2 else b"bad film") for i in range(6)],
        None, 1)
    vocab = prepare.build_vocabulary([(tokenized.words, tokenized.counts["train"])])
    assert (prepare.assemble(tokenized, "train", vocab)["movies"] == -1).all()
    got = prepare.assemble(tokenized, "train", vocab, movies={("train", 1): [7, 7, 7, 8, 8, 9]})
    by_id = dict(zip(got["ids"].tolist(), got["movies"].tolist()))
    assert by_id == {0: -1, 1: 7, 2: -1, 3: 8, 4: -1, 5: 9}


def test_too_small_a_share_for_any_whole_movie_is_one_line(tmp_path):
    from rnncli.errors import UsageError

    # Three reviews a movie, all of one label: a share of 1 review per label takes none.
    fetch.fetch(origin=str(archive_with_urls(tmp_path / "a.tar.gz", synthetic_reviews(24))))
    with pytest.raises(UsageError, match="holds out no whole movie.*--hold-out last"):
        store.training_shares(store.data_home(None), settings("movies", share=0.04))
