#!/usr/bin/env python3
"""Compute crowd-kit 1.4.2 reference outputs for the parity datasets into ref/.

Run in a virtualenv outside the repository:
    python3 -m venv /tmp/ck
    /tmp/ck/bin/pip install crowd-kit==1.4.2 "scikit-learn<1.6" "pandas<3"
    /tmp/ck/bin/python reference.py

For every dataset <d> and method <m> it writes
  ref/<d>.<m>.tsv          task, label, then one probability column per class (sorted)
  ref/<d>.<m>.skills.tsv   worker, skill  (mv/wawa/zbs: accuracy; onecoin: skill; glad: alpha)
  ref/<d>.ds.errors.tsv    worker, label, then P(label | true class) per class (DawidSkene only)
Labels are read as strings (dtype=str), as crowdcore treats them.

On pandas >= 3 (a second virtualenv: the same recipe with "pandas>=3" instead of "pandas<3";
crowd-kit 1.4.2 only asks for pandas>=1.1.0, so an unpinned install gets pandas 3) it writes
only the votes, mv, wawa and zbs, into ref/pandas3/: there MajorityVote's value_counts() groups
in order of appearance instead of sorting, so the plain votes (MajorityVote, Wawa's first vote)
break ties in the order labels first appear in the file, not in sorted order
(crowdcore's TieBreak::FirstSeen). ZBS and weighted votes are unchanged.
"""
import os
import sys
import time

import pandas as pd
from crowdkit.aggregation import (
    GLAD,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
    ZeroBasedSkill,
)

HERE = os.path.dirname(os.path.abspath(__file__))
PANDAS3 = int(pd.__version__.split(".")[0]) >= 3
REF = os.path.join(HERE, "ref", "pandas3") if PANDAS3 else os.path.join(HERE, "ref")
DATASETS = ["handmade", "synth_mixed", "synth_spammy", "synth_imbalance", "synth_sparse",
            "synth_confusion", "synth_overlap3"]


def read(name):
    return pd.read_csv(os.path.join(HERE, name), sep="\t", dtype=str, keep_default_na=False)


def fmt(x):
    return "%.12g" % x


def write_probas(path, probas, labels):
    probas = probas.sort_index()
    probas = probas[sorted(probas.columns)]
    with open(path, "w") as f:
        f.write("\t".join(["task", "label"] + [str(c) for c in probas.columns]) + "\n")
        for task, row in probas.iterrows():
            f.write("\t".join([task, str(labels[task])] + [fmt(v) for v in row.values]) + "\n")


def write_series(path, series, col):
    with open(path, "w") as f:
        f.write(f"worker\t{col}\n")
        for k, v in series.sort_index().items():
            f.write(f"{k}\t{fmt(v)}\n")


def write_errors(path, errors):
    errors = errors.sort_index()
    errors = errors[sorted(errors.columns)]
    with open(path, "w") as f:
        f.write("\t".join(["worker", "label"] + [str(c) for c in errors.columns]) + "\n")
        for (w, l), row in errors.iterrows():
            f.write("\t".join([w, l] + [fmt(v) for v in row.values]) + "\n")


def run(d, m, df, **kw):
    t0 = time.time()
    if m == "mv":
        a = MajorityVote().fit(df)
        skills = a.skills_
    elif m == "wawa":
        a = Wawa()
        a.fit_predict_proba(df)
        skills = a.skills_
    elif m == "zbs":
        a = ZeroBasedSkill()
        a.fit_predict_proba(df)
        skills = a.skills_
    elif m.startswith("ds"):
        a = DawidSkene(**kw.get("init", {})).fit(df, kw.get("gold"), kw.get("initial_error"))
        skills = None
        write_errors(os.path.join(REF, f"{d}.{m}.errors.tsv"), a.errors_)
    elif m == "onecoin":
        a = OneCoinDawidSkene().fit(df)
        skills = a.skills_
    elif m == "glad":
        a = GLAD().fit(df)
        skills = a.alphas_
    write_probas(os.path.join(REF, f"{d}.{m}.tsv"), a.probas_, a.labels_)
    if skills is not None:
        write_series(os.path.join(REF, f"{d}.{m}.skills.tsv"), skills, "skill")
    print(f"{d} {m}: {time.time() - t0:.1f}s", flush=True)


def main():
    os.makedirs(REF, exist_ok=True)
    only = sys.argv[1:]
    for d in DATASETS:
        df = read(f"{d}.tsv")
        for m in ["mv", "wawa", "zbs"] if PANDAS3 else ["mv", "wawa", "zbs", "ds", "onecoin", "glad"]:
            if not only or m in only:
                run(d, m, df)
    if not PANDAS3 and (not only or "ds" in only):
        gold = read("synth_confusion.gold.tsv").set_index("task")["label"]
        run("synth_confusion", "ds_gold", read("synth_confusion.tsv"), gold=gold)
        ie = read("synth_mixed.init_error.tsv")
        ie["count"] = ie["count"].astype(float)
        initial = ie.pivot_table(index=["worker", "label"], columns="true_label",
                                 values="count", aggfunc="sum")
        initial.columns.name = None
        run("synth_mixed", "ds_init", read("synth_mixed.tsv"),
            init={"initial_error_strategy": "addition"}, initial_error=initial)


if __name__ == "__main__":
    main()
