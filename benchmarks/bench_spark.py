"""Spark against the local engine: rows/s scoring a Parquet file with the bundled model.

    rnncli data fetch                                   # the test split, once
    python benchmarks/bench_spark.py --reviews 100000   # needs the [spark] extra and Java

In one run, on the same Parquet file (the test split repeated to --reviews rows, row groups
of 5,000 so Spark can split it) and the same output (a Parquet file or folder): the local
engine (`rnncli predict --file in.parquet --output out.parquet`, in-process) on one core
and on all of them, then Spark local[1] and local[2] (`rnncli predict --engine spark`).
Spark's start-up (the JVM and the SparkContext) is timed apart from the job; the job
includes shipping the model, starting the Python workers and loading one session each.
Targets: an executor scores at >= 0.8x the local engine's per-core rate; local[2] >= 1.6x
local[1].
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def local_engine(src: Path, out: Path, workers: int) -> float:
    from rnncli.serve import tables
    from rnncli.serve.api import load

    model = load(workers=workers)
    t = time.perf_counter()
    table = tables.open_table(src)
    batches = tables.score(table, model.predict_stream)
    tables.write_file(out, tables.result_columns(table.columns), batches, str,
                      table.arrow_schema)
    return time.perf_counter() - t


def spark_engine(src: Path, out: Path, master: str, log_dir: Path) -> tuple[float, float]:
    from rnncli.serve.spark import predict_file, start_session

    t = time.perf_counter()
    spark = start_session(master, "rnncli bench", log_dir)
    spark.range(1).count()  # the first job starts the executor side
    started = time.perf_counter() - t
    t = time.perf_counter()
    predict_file(src, out, spark=spark)
    job = time.perf_counter() - t
    spark.stop()
    return started, job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reviews", type=int, default=100_000)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="data home holding the prepared test split (default: rnncli's)")
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq

    from rnncli.data import store

    home = args.data_dir or store.data_home()
    texts = store.load_split(home, "test").texts()
    texts = (texts * (args.reviews // len(texts) + 1))[: args.reviews]
    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    src = work / "in.parquet"
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), src,
                   row_group_size=5000)
    n = len(texts)
    cores = os.cpu_count() or 1
    print(f"{n:,} reviews (the test split repeated), {src.stat().st_size / 1e6:.0f} MB of "
          f"Parquet, {cores} cores, bundled model")

    one = local_engine(src, work / "local1.parquet", 1)
    print(f"local engine, 1 core:     {n / one:8,.0f} rows/s  ({one:.1f} s)")
    every = local_engine(src, work / "local.parquet", min(cores, 8))
    print(f"local engine, {min(cores, 8)} cores:    {n / every:8,.0f} rows/s  ({every:.1f} s)")
    rates = {}
    for k in (1, 2):
        start, job = spark_engine(src, work / f"spark{k}.parquet", f"local[{k}]", work)
        rates[k] = n / job
        print(f"Spark local[{k}]:          {rates[k]:8,.0f} rows/s  ({job:.1f} s job; "
              f"start-up {start:.1f} s apart)")
    per_core = rates[1] / (n / one)
    print(f"executor / local per-core rate: {per_core:.2f}x (target >= 0.8x); "
          f"local[2] / local[1]: {rates[2] / rates[1]:.2f}x (target >= 1.6x)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
