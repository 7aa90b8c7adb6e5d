"""Files of one run that disagree are refused in one line naming both sides, before any
review is scored or any epoch trained: a preprocessing.json whose maxlen is not the model's
input width, one whose num_words is beyond the model's embedding, and a --teacher that is a
valid model of another shape or vocabulary. (Copying one run's model over another's made
evaluate a traceback, and export or distillation of the wrong ids.)"""

import json
from pathlib import Path

import pytest
from conftest import invoke, one_line_error

from rnncli.config import run_files
from rnncli.config import settings as config
from rnncli.text.preprocessing import Preprocessing

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("training_extra")]

FIX = ("they come from different runs: retrain, or put back the preprocessing.json the "
       "model was trained with.")
STUDENT = ["--maxlen", "20", "--num-words", "30", "--units", "2", "--embedding-dim", "4",
           "--batch-size", "8", "--no-jit", "--pooling", "masked-max", "--cell", "gru",
           "--epochs", "1"]


def run_folder(folder: Path, model: dict, prep: dict | None = None) -> Path:
    """A run folder holding an untrained model of settings `model` and config.json as the
    model's, beside a preprocessing.json of the prepared data made with `prep` changed."""
    from rnncli.data import store as dataset
    from rnncli.model.build import build_model
    from rnncli.train.loop import preprocessing_for

    home = dataset.data_home(None)
    cfg = config.resolve(None, None, {"units": 2, "embedding_dim": 4, **model})
    folder.mkdir()
    build_model(cfg).save(folder / run_files.MODEL)
    (folder / run_files.CONFIG).write_text(json.dumps(cfg.to_dict()))
    described = {k: v for k, v in (prep or {}).items() if k in ("maxlen", "num_words")}
    meta = preprocessing_for(config.resolve(None, None, {**model, **described}),
                             dataset.read_meta(home), home).to_dict()
    (folder / run_files.PREPROCESSING).write_text(json.dumps({**meta, **(prep or {})}))
    return folder


MISMATCHES = {
    "maxlen": ({"maxlen": 20, "num_words": 30}, {"maxlen": 10},
               "{meta} says maxlen 10, {model} takes 20: " + FIX),
    "embedding": ({"maxlen": 20, "num_words": 10}, {"num_words": 30},
                  "{meta} says num_words 30, {model}'s embedding has 10 rows: " + FIX),
    "masked embedding": ({"maxlen": 20, "num_words": 10, "pooling": "masked-max",
                          "cell": "gru"}, {"num_words": 30},
                         "{meta} says num_words 30, {model}'s embedding has 10 rows: " + FIX),
}


@pytest.mark.parametrize("command", [["evaluate", "--model", "run"],
                                     ["export", "onnx", "--model", "run"]])
@pytest.mark.parametrize("case", MISMATCHES)
def test_a_model_and_a_preprocessing_of_different_runs(prepared, tmp_path, command, case):
    model, prep, message = MISMATCHES[case]
    run_folder(tmp_path / "run", model, prep)
    one_line_error(invoke(*command), "Error: " + message.format(
        meta=Path("run", run_files.PREPROCESSING), model=Path("run", run_files.MODEL)))
    assert not (tmp_path / "run" / run_files.ONNX).exists()


def test_the_loaded_model_is_checked_too(prepared, tmp_path):
    """What the file says is read without TensorFlow; the loaded model is checked the
    same way (a file whose description could not be read)."""
    from rnncli.errors import ModelError
    from rnncli.model import runtime

    folder = run_folder(tmp_path / "run", {"maxlen": 20, "num_words": 30})
    model = runtime.load_keras_model(folder / run_files.MODEL)
    prep = Preprocessing.from_dict(
        json.loads((folder / run_files.PREPROCESSING).read_text()))
    runtime.check_fits(model, prep, folder / run_files.MODEL, folder / "p.json")
    prep.maxlen = 10
    with pytest.raises(ModelError, match="p.json says maxlen 10, .*model.keras takes 20"):
        runtime.check_fits(model, prep, folder / run_files.MODEL, folder / "p.json")


MASKED = {"maxlen": 20, "num_words": 30, "pooling": "masked-max", "cell": "gru"}
TEACHERS = {
    "maxlen": (
        {**MASKED, "maxlen": 40}, {},
        "Teacher t reads 40 tokens (t/preprocessing.json says maxlen 40), this run 20 "
        "(--maxlen): train teachers with this run's data settings."),
    "num_words": (
        {**MASKED, "num_words": 20}, {},
        "Teacher t knows 20 word ids (t/preprocessing.json says num_words 20), this run 30 "
        "(--num-words): train teachers with this run's data settings, or a smaller "
        "--num-words here."),
    "vocabulary": (
        MASKED, {"vocabulary": ["zzz"]},
        "Teacher t has another vocabulary: word 1 is 'zzz' in t/preprocessing.json"),
    "its own files": (
        {**MASKED, "num_words": 10}, {"num_words": 30},
        "t/preprocessing.json says num_words 30, t/model.keras's embedding has 10 rows: "
        + FIX),
    "not masked": (
        {"maxlen": 20, "num_words": 30}, {},
        "Teacher t is not a masked-max model (its pooling is last)"),
}


@pytest.mark.parametrize("case", TEACHERS)
def test_a_teacher_of_another_shape_is_refused_before_training(prepared, tmp_path, case):
    model, prep, message = TEACHERS[case]
    run_folder(tmp_path / "t", model, prep)
    res = invoke("train", *STUDENT, "--teacher", "t", "--output", "student")
    one_line_error(res, message, code=res.exit_code)
    assert res.exit_code in (1, 2) and not (tmp_path / "student").exists()
