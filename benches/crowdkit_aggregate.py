#!/usr/bin/env python3
"""crowd-kit 1.4.2 on the same file as the `aggregate` example, for the README's comparison.

    /tmp/ck/bin/python benches/crowdkit_aggregate.py ds /tmp/aggregate_1m.tsv /tmp/ck_ds.tsv

Reads the TSV (labels as strings), fits MajorityVote (`mv`) or DawidSkene (`ds`, defaults:
100 iterations, tol 1e-5) and writes `task label confidence`, like the example does. Prints the
fit time alone to stderr; measure the whole run with /usr/bin/time -v.
"""
import sys
import time

import pandas as pd
from crowdkit.aggregation import DawidSkene, MajorityVote

method, src, dst = sys.argv[1:4]
df = pd.read_csv(src, sep="\t", dtype=str, keep_default_na=False)
t0 = time.time()
model = {"mv": MajorityVote, "ds": DawidSkene}[method]()
probas = model.fit_predict_proba(df)
labels = probas.idxmax(axis=1)
print(f"fit {time.time() - t0:.2f} s", file=sys.stderr)
out = pd.DataFrame({"label": labels, "confidence": probas.max(axis=1)})
out.index.name = "task"
out.to_csv(dst, sep="\t")
