"""rnncli inside Spark: a pandas UDF that scores a text column with an exported model.

    from rnncli.spark import predict_udf
    df.withColumn("sentiment", predict_udf()("text"))   # struct<label, probability>

A thin re-export of rnncli/serve/spark.py (docs/spark.md); pyspark is imported only when
predict_udf is called.
"""

from rnncli.serve.spark import predict_file, predict_udf, start_session

__all__ = ["predict_file", "predict_udf", "start_session"]
