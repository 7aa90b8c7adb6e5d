"""Scoring inside Spark: one onnxruntime session per executor process, Arrow batches in.

    from rnncli.spark import predict_udf
    df.withColumn("sentiment", predict_udf()("text"))     # struct<label, probability>

    $ rnncli predict --engine spark --file reviews.parquet --output scored.parquet

A model of K > 2 labels gives the most probable label and its probability;
`all_probabilities` adds one double column p_<label> per label.

The model file (and the external weights file it names, as the bundled model has) is shipped
with the job through SparkContext.addFile, so executors need rnncli installed but not the
model; `ship=False` reads a path every executor sees instead (a shared or cluster file
system). Each executor's Python worker loads the model once (`_MODELS`, keyed by path) and
gives its session as many threads as a task has cores (spark.task.cpus): Spark runs one task
per core, so the cores are used by tasks, not by one session's threads.

pyspark, pandas and pyarrow (the `[spark]` extra) are imported only here, when used; without
them, or without Java, one line says what to install. The JVM's stdout and stderr (its
log, any stack trace) go to a file (`spark.log` in a temporary folder, named in errors),
never to the user's screen, and a failed job is one line.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rnncli.errors import MissingExtraError, ModelError, RnncliError, UsageError
from rnncli.serve import locate

INSTALL = 'pip install "rnncli[spark]"'
DEFAULT_MASTER = "local[*]"
RESULT_FIELDS = (("label", "string"), ("probability", "double"), ("known_words", "int"))

_MODELS: dict[tuple[str, int], object] = {}  # (model path, threads) -> Model, per process

def require_spark() -> None:
    """pyspark, pandas and pyarrow importable, and a Java runtime to start Spark with; else
    one line naming what to install."""
    missing = []
    for module in ("pyspark", "pandas", "pyarrow"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MissingExtraError(f"The Spark engine needs {', '.join(missing)}, which "
                                f"{'is' if len(missing) == 1 else 'are'} not installed: "
                                f"{INSTALL}")
    if java_missing():
        raise MissingExtraError("Spark needs Java (17 or later), and there is none: install a "
                                "JDK (e.g. apt install openjdk-17-jre-headless) or set "
                                "JAVA_HOME to one.")


def java_missing() -> bool:
    home = os.environ.get("JAVA_HOME")
    if home:
        return not os.access(Path(home) / "bin" / "java", os.X_OK)
    return shutil.which("java") is None


def start_session(master: str = DEFAULT_MASTER, app_name: str = "rnncli predict",
                  log_dir: Path | None = None):
    """A SparkSession on `master` (an active one is reused), quiet: the JVM's output (its
    log, any stack trace, the Python workers' stderr) goes to log_dir/spark.log, Spark's
    progress bar and web UI are off, and Python workers run this interpreter."""
    require_spark()
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Executors in local mode run `python3` from PATH unless told: use this interpreter,
    # which has rnncli installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="rnncli-spark-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "spark.log"
    conf = (SparkConf().setMaster(master).setAppName(app_name)
            .set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.sql.execution.arrow.pyspark.enabled", "true")
            # Python tracebacks of a failed task without the JVM frames around them.
            .set("spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled", "true")
            .set("rnncli.log", str(log)))
    try:
        if SparkContext._gateway is None:  # the JVM's stdout and stderr to the log file
            with open(log, "ab") as sink:
                gateway = launch_gateway(conf, popen_kwargs={"stdout": sink, "stderr": sink})
            SparkContext(conf=conf, gateway=gateway)
        spark = SparkSession.builder.config(conf=conf).getOrCreate()
    except Exception as exc:
        raise RnncliError(f"Spark did not start on master {master!r} ({_first_line(exc)}); "
                          f"its log is {log}.") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class ModelRef:
    """How executors find the model: a file shipped with the job (SparkFiles), or a path
    they all see, and its labels when the driver could read it. Picklable: it travels
    inside the UDF."""

    def __init__(self, path: Path, shipped: bool, labels: tuple[str, ...] | None = None):
        self.name, self.path, self.shipped = path.name, str(path), shipped
        self.labels = labels

    def local_path(self) -> str:
        if not self.shipped:
            return self.path
        from pyspark import SparkFiles

        return SparkFiles.get(self.name)


def model_files(path: Path) -> list[Path]:
    """The model file and the external-data files beside it that it names (the bundled
    model keeps its weights in `model.<hash>.data`)."""
    files = [path]
    if path.stat().st_size < (64 << 20):  # a graph with external weights is small
        raw = path.read_bytes()
        files += sorted(p for p in path.parent.glob("*.data")
                        if p.is_file() and p.name.encode() in raw)
    return files


def ship_model(spark, model: str | Path | None = None, ship: bool = True,
               threshold: float | None = None) -> ModelRef:
    """The model to score with (None: the bundled one; a run folder or .onnx file), added
    to the job's files unless `ship` is False. Loaded once here as well, so a missing or
    broken model (or a threshold it does not take) is refused before any task starts."""
    from rnncli.serve.api import Model

    if model is None:
        path = locate.BUNDLED
    elif ship:
        ref = locate.find_model(Path(model), prefer="onnx")
        if ref.kind != "onnx":
            raise ModelError(f"{ref.path} is a Keras model; Spark serves ONNX: run "
                             f"`rnncli export onnx --model {ref.path.parent}` first.")
        path = ref.path
    else:
        path = Path(model)
    labels = None
    if ship or Path(path).exists():
        driver = Model(path, workers=1)  # the driver's check: one line if it is not a model
        driver.onnx_model.check_threshold(threshold)
        labels = driver.labels
    if not ship:
        return ModelRef(Path(path), shipped=False, labels=labels)
    graph, *weights = model_files(Path(path))
    graph = content_named(graph)
    for f in [graph, *weights]:
        spark.sparkContext.addFile(str(f))
    return ModelRef(graph, shipped=True, labels=labels)


_SHIP_DIR: list[Path] = []


def content_named(path: Path) -> Path:
    """`path` under a name made from its contents (`model.<sha256 16>.onnx`), in a folder
    this process removes at exit. A SparkContext keeps one file per name for its whole life
    and fails every task that ships another file of that name, so two models both called
    model.onnx could not be scored in one session. External weights files keep their names:
    the graph names them, and the bundled model's already carry a hash."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not _SHIP_DIR:
        _SHIP_DIR.append(Path(tempfile.mkdtemp(prefix="rnncli-ship-")))
        atexit.register(shutil.rmtree, _SHIP_DIR[0], True)
    target = _SHIP_DIR[0] / f"{path.stem}.{digest.hexdigest()[:16]}{path.suffix}"
    if not target.exists():
        part = target.with_name(target.name + ".part")
        try:
            os.link(path, part)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(path, part)
        os.replace(part, target)
    return target


def executor_model(ref: ModelRef):
    """This process's Model for `ref`, loaded on first use; a session gets the task's
    cores as threads."""
    from rnncli.serve.api import Model

    threads = task_cpus()
    key = (ref.local_path(), threads)
    model = _MODELS.get(key)
    if model is None:
        model = _MODELS[key] = Model(Path(key[0]), workers=threads)
    return model


def task_cpus() -> int:
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        return max(1, int(ctx.cpus())) if ctx is not None else 1
    except Exception:
        return 1


def _texts(frame, columns: list[str]) -> list[str]:
    """Each row's review: its text columns joined by a space, nulls left out."""
    if len(columns) == 1:
        return [t if isinstance(t, str) else "" for t in frame[columns[0]].tolist()]
    cols = [frame[c].tolist() for c in columns]
    return [" ".join(t for t in row if isinstance(t, str)) for row in zip(*cols)]


def _scores(model, texts: list[str], threshold: float | None, every: bool = False):
    preds = model.predict(texts, threshold, all_probabilities=every)
    return ([p.label for p in preds], [p.probability for p in preds],
            [p.known_words for p in preds], [p.probabilities for p in preds])


def label_column(label: str) -> str:
    return "p_" + label


def score_frames(ref: ModelRef, text_columns: list[str], threshold: float | None,
                 all_probabilities: bool = False):
    """The function mapInPandas runs: each pandas batch with label, probability and
    known_words added, and with `all_probabilities` a p_<label> column per label."""
    def run(frames: Iterator) -> Iterator:
        import pandas as pd

        model = executor_model(ref)
        for frame in frames:
            labels, probs, known, every = _scores(model, _texts(frame, text_columns),
                                                  threshold, all_probabilities)
            frame = frame.copy()
            frame["label"] = pd.Series(labels, index=frame.index, dtype=object)
            frame["probability"] = pd.Series(probs, index=frame.index, dtype="Float64")
            frame["known_words"] = pd.Series(known, index=frame.index, dtype="int32")
            if all_probabilities:
                for label in model.labels:
                    frame[label_column(label)] = pd.Series(
                        [None if e is None else e[label] for e in every], index=frame.index,
                        dtype="Float64")
            yield frame

    return run


def predict_udf(model: str | Path | None = None, threshold: float | None = None,
                ship: bool = True, spark=None):
    """A pandas UDF scoring a text column (or several, joined by a space) to a struct
    (label string, probability double); a null or blank text gives nulls.

        df.withColumn("sentiment", predict_udf()("text"))
        df.withColumn("s", predict_udf("artifacts/model.onnx")("title", "body"))

    `model`: None for the bundled model, else a run folder or .onnx file; shipped with the
    job (SparkContext.addFile) unless `ship` is False, when every executor must see the
    path. `spark`: the session (default: the active one)."""
    require_spark()
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import pandas_udf

    spark = spark or SparkSession.getActiveSession()
    if spark is None:
        raise UsageError("predict_udf needs a running SparkSession: create one first "
                         "(SparkSession.builder.getOrCreate()).")
    ref = ship_model(spark, model, ship, threshold)

    @pandas_udf("label string, probability double")
    def sentiment(*columns):
        import pandas as pd

        frame = pd.concat(columns, axis=1, keys=range(len(columns)))
        labels, probs, _, _ = _scores(executor_model(ref), _texts(frame, list(frame.columns)),
                                      threshold)
        return pd.DataFrame({"label": pd.Series(labels, dtype=object),
                             "probability": pd.Series(probs, dtype="Float64")})

    return sentiment


def read_input(spark, path: str, suffix: str):
    """A DataFrame of the file or folder at `path`, read by Spark by its suffix."""
    reader = spark.read
    if suffix in (".csv", ".tsv"):
        return reader.options(header=True, multiLine=True, escape='"', inferSchema=False,
                              sep="\t" if suffix == ".tsv" else ",", encoding="UTF-8",
                              mode="FAILFAST").csv(path)
    if suffix == ".jsonl":
        return reader.options(mode="FAILFAST").json(path)
    if suffix == ".parquet":
        return reader.parquet(path)
    # One review a line, numbered as `rnncli predict --file` numbers them.
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    lines = reader.text(path).rdd.zipWithIndex().map(lambda r: (r[1] + 1, r[0][0].strip()))
    return spark.createDataFrame(lines, StructType([StructField("line", LongType()),
                                                    StructField("text", StringType())]))


def predict_file(path: str | Path, output: str | Path, model: str | Path | None = None,
                 text_columns: list[str] | None = None, threshold: float | None = None,
                 master: str = DEFAULT_MASTER, spark=None, ship: bool = True,
                 all_probabilities: bool = False) -> int:
    """Score the file (or folder) at `path` with Spark and write a Parquet folder at
    `output`: the input's columns plus label, probability and known_words (and with
    `all_probabilities`, p_<label> per label). Written under a temporary name and renamed
    when it is a local folder. The number of rows written."""
    from rnncli.serve.tables import (
        DEFAULT_TEXT_COLUMN,
        RESULT_COLUMNS,
        did_you_mean,
        is_table,
        open_table,
    )

    text_columns = list(text_columns or [DEFAULT_TEXT_COLUMN])
    suffix = Path(str(path)).suffix.lower()
    local_out = "://" not in str(output)
    # Absolute: the JVM resolves a relative path against its own working folder.
    out = Path(output).absolute() if local_out else None
    if "://" not in str(path):
        path = Path(path).absolute()
    if out is not None and out.exists():
        raise UsageError(f"--output {out} exists: Spark writes a new folder; remove it or "
                         "name another.")
    if "://" not in str(path) and not Path(path).exists():
        raise UsageError(f"Cannot read {path} (no such file): check --file.")
    if "://" not in str(path) and Path(path).is_file() and is_table(path):
        # Columns, types, an empty file: refused before Spark starts (seconds).
        next(open_table(path, text_columns).batches(), None)
    require_spark()
    spark = spark or start_session(master)
    log = spark.sparkContext.getConf().get("rnncli.log", "the Spark log")
    try:
        ref = ship_model(spark, model, ship, threshold)
        if all_probabilities and ref.labels is None:
            raise UsageError(f"--all-probabilities needs the model's labels, and {ref.path} "
                             "is not readable here: ship the model with the job.")
        extra = [label_column(label) for label in ref.labels or ()] if all_probabilities \
            else []
        df = read_input(spark, str(path), suffix)
        fields = {f.name: f.dataType.simpleString() for f in df.schema.fields}
        for name in text_columns:
            if name not in fields:
                listed = ", ".join(fields) or "none"
                raise UsageError(f"{path} has no column {name!r}"
                                 f"{did_you_mean(name, fields)}: its columns are {listed}; "
                                 "name the review column with --text-column.")
            if fields[name] not in ("string", "void"):
                raise UsageError(f"Column {name!r} of {path} holds {fields[name]} values, "
                                 "not review text: name the review column with "
                                 "--text-column.")
        for name in (*RESULT_COLUMNS, *extra):
            if name in fields:
                raise UsageError(f"{path} already has a column {name!r}, which the "
                                 "prediction writes: rename or drop it first.")
        if df.isEmpty():
            raise UsageError(f"{path} holds no rows: nothing to predict.")
        parallelism = spark.sparkContext.defaultParallelism
        if df.rdd.getNumPartitions() < parallelism:  # one file, one split: use every core
            df = df.repartition(parallelism)
        schema = ", ".join([*(f"`{f.name}` {f.dataType.simpleString()}"
                              for f in df.schema.fields),
                            *(f"{n} {t}" for n, t in RESULT_FIELDS),
                            *(f"`{_quoted(n)}` double" for n in extra)])
        scored = df.mapInPandas(score_frames(ref, text_columns, threshold, all_probabilities),
                                schema)
        # A local folder is written under a temporary name and renamed once complete.
        target = str(out.parent / f".{out.name}.tmp-{os.getpid()}") if out else str(output)
        scored.write.mode("error").parquet(target)
        if out is not None:
            os.replace(target, out)
        return spark.read.parquet(str(out or output)).count()
    except RnncliError:
        raise
    except Exception as exc:
        if out is not None:
            for leftover in out.parent.glob(f".{out.name}.tmp-{os.getpid()}"):
                shutil.rmtree(leftover, ignore_errors=True)
        raise job_error(exc, log) from None


def _quoted(name: str) -> str:
    """A column name inside Spark's backquotes."""
    return name.replace("`", "``")


_OUR_ERROR = re.compile(r"rnncli\.errors\.(\w+): (.+)")


def job_error(exc: BaseException, log: str) -> RnncliError:
    """One line for a failed Spark job: our own error when a task raised one (a model that
    does not load on an executor), else the first line of Spark's, with where its log is."""
    from rnncli import errors

    text = str(exc)
    ours = _OUR_ERROR.findall(text)
    if ours:
        name, message = ours[-1]
        cls = getattr(errors, name, RnncliError)
        return cls(message.strip())
    first = next((line.strip() for line in text.splitlines() if line.strip()),
                 type(exc).__name__)
    return RnncliError(f"The Spark job failed ({type(exc).__name__}: {first[:300]}); its log "
                       f"is {log}.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
