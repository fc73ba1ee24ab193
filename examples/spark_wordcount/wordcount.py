"""Word count with PySpark: the MrsJobStep of examples/spark_wordcount.

Reads every text file in ``--text`` (a folder), counts its words (lower-cased runs of letters,
digits and apostrophes), keeps those seen at least ``--min_count`` times and writes into the
``--counts`` folder:

* ``part-*``: ``word<TAB>count`` lines, most frequent first (Spark's own output files);
* ``metrics.json``: ``words`` and ``distinct_words`` as mloop float metrics.

mloop starts it as ModelArts does, ``spark-submit [run_args] wordcount.py [app_args]
--text=<folder> --counts=<folder>``; by hand::

    spark-submit wordcount.py --text=data/ --counts=/tmp/counts/
"""

import argparse
import json
import os
import re

from pyspark.sql import SparkSession

WORD = re.compile(r"[a-z0-9']+")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", required=True, help="folder of text files")
    parser.add_argument("--counts", required=True, help="folder to write the counts into")
    parser.add_argument("--min_count", type=int, default=1, help="drop words seen fewer times")
    args, _ = parser.parse_known_args()  # a platform may pass more than we read
    min_count = args.min_count

    spark = SparkSession.builder.appName("wordcount").getOrCreate()
    try:
        words = spark.sparkContext.textFile(args.text).flatMap(lambda line: WORD.findall(line.lower()))
        counts = words.map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).cache()
        kept = counts.filter(lambda wc: wc[1] >= min_count).sortBy(lambda wc: (-wc[1], wc[0]))
        total, distinct = words.count(), counts.count()
        # The output folder exists (mloop made it): Spark replaces it with its part files.
        (spark.createDataFrame(kept, "word string, count long").coalesce(1)
         .write.mode("overwrite").option("sep", "\t").csv(args.counts))
        top = kept.take(5)
    finally:
        spark.stop()
    with open(os.path.join(args.counts, "metrics.json"), "w") as fh:
        json.dump([{"key": "words", "title": "words", "type": "float", "data": {"value": total}},
                   {"key": "distinct_words", "title": "distinct words", "type": "float",
                    "data": {"value": distinct}}], fh)
    print(f"wordcount: {total} words, {distinct} distinct; most frequent: "
          + ", ".join(f"{w} ({n})" for w, n in top))


if __name__ == "__main__":
    main()
