"""Scoring inside Spark (local[2], one SparkSession for the whole run): the same rows as
`rnncli predict --file`, the UDF's struct, and failures as one line without a JVM trace.

Marked `spark` (CI's second run: -m "slow or real_data or spark"); needs the [spark]
extra and Java. The two tests at the top start no Spark and run in the fast suite.
"""

import json
import sys

import pytest
from conftest import invoke, one_line_error

spark_test = pytest.mark.spark


def test_without_the_extra_spark_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    (tmp_path / "r.txt").write_text("great film\n")
    res = invoke("predict", "--engine", "spark", "--file", "r.txt", "--output", "o.parquet")
    one_line_error(res, 'pip install "rnncli[spark]"')


def test_without_java_spark_says_so(tmp_path, monkeypatch):
    pytest.importorskip("pyspark")
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    (tmp_path / "r.txt").write_text("great film\n")
    res = invoke("predict", "--engine", "spark", "--file", "r.txt", "--output", "o.parquet")
    one_line_error(res, "Spark needs Java")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    pytest.importorskip("pyspark")
    from rnncli.serve.spark import java_missing, start_session

    if java_missing():
        pytest.skip("no Java: Spark cannot start")
    session = start_session("local[2]", "rnncli tests", tmp_path_factory.mktemp("spark-log"))
    yield session
    session.stop()


def spark_frame(spark, ids, texts):
    return spark.createDataFrame(list(zip(ids, texts)), "id long, text string")


def read_parquet(path) -> list[dict]:
    import pyarrow.parquet as pq

    return sorted(pq.read_table(path).to_pylist(), key=lambda r: r["id"])


@spark_test
@pytest.mark.real_data
def test_spark_rows_equal_predict_file_on_real_reviews(spark, real_home, tmp_path):
    from rnncli.data.store import load_split
    from rnncli.serve.spark import predict_file

    texts = [t.replace("\n", " ").strip() for t in load_split(real_home, "test").texts(300)]
    texts[7] = ""  # a blank review keeps its row, with nulls
    (tmp_path / "reviews.txt").write_text("\n".join(texts) + "\n")
    res = invoke("predict", "--file", "reviews.txt", "--format", "jsonl")
    assert res.exit_code == 0, res.output
    # split("\n"), not splitlines(): a review may hold U+2028, which JSON leaves as it is.
    local = [json.loads(line) for line in res.stdout.split("\n") if line]
    # Ids 1..n as the local rows' line numbers; several input files, as Spark reads them.
    spark_frame(spark, range(1, len(texts) + 1), texts).repartition(3) \
        .write.parquet(str(tmp_path / "in.parquet"))
    n = predict_file(tmp_path / "in.parquet", tmp_path / "out.parquet", spark=spark)
    got = read_parquet(tmp_path / "out.parquet")
    assert n == len(local) == len(got) == 300
    assert list(got[0]) == ["id", "text", "label", "probability", "known_words"]
    for g, w in zip(got, local):
        assert g["id"] == w["line"] and g["label"] == w["label"]
        assert g["known_words"] == w["known_words"]
        if w["probability"] is None:
            assert g["probability"] is None and g["label"] is None
        else:
            assert abs(g["probability"] - w["probability"]) <= 1e-6


@spark_test
def test_the_cli_engine_writes_a_parquet_folder_quietly(spark, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,text\n1,a wonderful moving film\n2,\n3,awful boring waste\n")
    res = invoke("predict", "--engine", "spark", "--file", path, "--output", "out.parquet")
    assert res.exit_code == 0, res.output
    assert res.stderr.strip().splitlines() == [
        "Wrote 3 rows to out.parquet (Parquet, with Spark on local[*])."]
    got = read_parquet(tmp_path / "out.parquet")
    assert [r["id"] for r in got] == ["1", "2", "3"]  # csv: read as text, kept as text
    assert [r["label"] for r in got] == ["positive", None, "negative"]
    assert got[1]["probability"] is None
    assert not list(tmp_path.glob(".out.parquet.tmp-*"))


@spark_test
def test_predict_udf_gives_a_struct_with_nulls_for_null_texts(spark):
    from rnncli.spark import predict_udf

    df = spark_frame(spark, [1, 2, 3, 4], ["great wonderful film", None, " ", "awful boring"])
    rows = df.withColumn("sentiment", predict_udf()("text")).orderBy("id").collect()
    s = [r["sentiment"] for r in rows]
    assert s[0]["label"] == "positive" and s[3]["label"] == "negative"
    assert s[1]["label"] is None and s[1]["probability"] is None
    assert s[2]["label"] is None and s[2]["probability"] is None
    import rnncli

    want = rnncli.load().predict(["great wonderful film", "awful boring"])
    assert abs(s[0]["probability"] - want[0].probability) <= 1e-6
    assert abs(s[3]["probability"] - want[1].probability) <= 1e-6
    # Several columns are joined by a space, as --text-column does.
    two = spark.createDataFrame([("awful", "boring")], "a string, b string")
    joined = two.select(predict_udf()("a", "b").alias("s")).collect()[0]["s"]
    assert abs(joined["probability"] - want[1].probability) <= 1e-6


@pytest.fixture
def spark_table(spark, tmp_path):
    """A Parquet folder written by Spark: the checks before Spark starts (a single local
    file) do not see it, so Spark's own checks answer."""
    path = tmp_path / "folder.parquet"
    spark_frame(spark, [1, 2], ["great film", "dull film"]).write.parquet(str(path))
    return path


@spark_test
def test_a_missing_column_suggests_the_close_one(spark_table):
    res = invoke("predict", "--engine", "spark", "--file", spark_table, "--output", "o.parquet",
                 "--text-column", "txt")
    one_line_error(res, "has no column 'txt' (did you mean 'text'?)", code=2)


@spark_test
def test_a_column_of_numbers_is_one_line(spark_table):
    res = invoke("predict", "--engine", "spark", "--file", spark_table, "--output", "o.parquet",
                 "--text-column", "id")
    one_line_error(res, "holds bigint values, not review text", code=2)


@spark_test
def test_an_empty_input_is_one_line(spark, tmp_path):
    spark_frame(spark, [], []).write.parquet(str(tmp_path / "empty.parquet"))
    res = invoke("predict", "--engine", "spark", "--file", "empty.parquet", "--output", "o")
    one_line_error(res, "holds no rows", code=2)


@spark_test
def test_a_corrupt_model_is_one_line(spark, spark_table, tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    res = invoke("predict", "--engine", "spark", "--file", spark_table, "--output", "o.parquet",
                 "--model", tmp_path / "broken.onnx")
    one_line_error(res, "not a valid ONNX model")


@spark_test
def test_a_model_corrupt_on_the_executors_is_one_line(spark, spark_table, tmp_path):
    """The driver's copy may be fine and an executor's not (a path they all see, changed):
    the task's ModelError comes back as one line, without Spark's stack trace."""
    from rnncli.errors import ModelError
    from rnncli.serve.spark import ModelRef, job_error, score_frames

    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    ref = ModelRef(tmp_path / "broken.onnx", shipped=False)
    df = spark.read.parquet(str(spark_table))
    schema = "id long, text string, label string, probability double, known_words int"
    with pytest.raises(Exception) as info:
        df.mapInPandas(score_frames(ref, ["text"], None), schema).collect()
    err = job_error(info.value, "spark.log")
    assert isinstance(err, ModelError) and "not a valid ONNX model" in str(err)
    assert "\n" not in str(err) and "at org.apache" not in str(err)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """The bundled model wrapped as a text-input graph (tokenizer inside; needs onnx)."""
    import shutil

    pytest.importorskip("onnx")
    from rnncli.serve import locate

    folder = tmp_path_factory.mktemp("text-model")
    for f in locate.BUNDLED.parent.iterdir():
        if f.suffix in (".onnx", ".data"):
            shutil.copy(f, folder / f.name)
    res = invoke("export", "onnx", "--model", folder / "model.onnx", "--text-input")
    assert res.exit_code == 0, res.output
    return folder / "model.text.onnx"


@spark_test
def test_a_text_input_model_scores_in_spark_as_it_does_locally(spark, text_model, tmp_path):
    import rnncli
    from rnncli.spark import predict_udf

    texts = ["a wonderful, moving film", None, "awful, boring, a waste of time"]
    want = rnncli.load(text_model).predict([t or "" for t in texts])
    df = spark_frame(spark, [1, 2, 3], texts)
    rows = df.select("id", predict_udf(text_model)("text").alias("s")).orderBy("id").collect()
    for r, w in zip(rows, want):
        assert r["s"]["label"] == w.label
        if w.probability is None:
            assert r["s"]["probability"] is None
        else:
            assert abs(r["s"]["probability"] - w.probability) <= 1e-6


@spark_test
def test_two_models_of_one_name_score_in_one_session(spark, text_model, tmp_path):
    """A SparkContext keeps one shipped file per name: a second, different model.onnx
    must not collide with the bundled one shipped earlier in the session."""
    import shutil

    import rnncli
    from rnncli.spark import predict_udf

    other = tmp_path / "other"
    other.mkdir()
    for f in text_model.parent.iterdir():
        if f.suffix == ".data":
            shutil.copy(f, other / f.name)
    shutil.copy(text_model, other / "model.onnx")  # the text graph, under the bundled name
    texts = ["a wonderful, moving film", "awful, boring, a waste of time"]
    df = spark_frame(spark, [1, 2], texts)
    for model in (None, other / "model.onnx", None):
        want = rnncli.load(model).predict(texts)
        rows = df.select("id", predict_udf(model)("text").alias("s")).orderBy("id").collect()
        assert [r["s"]["label"] for r in rows] == [w.label for w in want]
        for r, w in zip(rows, want):
            assert abs(r["s"]["probability"] - w.probability) <= 1e-6
