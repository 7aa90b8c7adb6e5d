"""End to end on the real Stanford archive (RNNCLI_TEST_ARCHIVE, tests/conftest.py), through
`data fetch --from`."""

import json

import pytest
from conftest import NO_ARCHIVE, REAL_ARCHIVE, invoke

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=NO_ARCHIVE),
]


def test_real_archive_counts_and_reports(real_home, monkeypatch):
    monkeypatch.setenv("RNNCLI_HOME", str(real_home))
    info = json.loads(invoke("data", "info", "--json", "--num-words", "1000").stdout)
    for split in ("train", "test"):
        assert info["splits"][split]["reviews"] == 25_000
        assert info["splits"][split]["pos"] == info["splits"][split]["neg"] == 12_500
    assert info["max_id"] == 999
    assert info["non_utf8"] == 0

    for args in (["0"], ["0", "--split", "test"]):
        decoded = json.loads(invoke("data", "decode", *args, "--json").stdout)
        assert decoded["decoded"].startswith("? ")
        assert len(decoded["text"]) > 50 and decoded["rating"] in range(1, 11)

    lengths = json.loads(invoke("data", "lengths", "--maxlen", "80", "--json").stdout)
    assert lengths["reviews"] == 25_000
    # Most IMDB reviews are longer than 80 tokens: the recipe sees only their ends.
    assert lengths["truncated_share"] > 0.8
