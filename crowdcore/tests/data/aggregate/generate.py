#!/usr/bin/env python3
"""Generate the aggregation parity datasets (seeded, deterministic).

Writes, next to this script:
  <name>.tsv        answers: task, worker, label (crowd-kit's columns)
  <name>.truth.tsv  the known true label of every task (synthetic sets only)
  synth_confusion.gold.tsv   gold labels for the first 60 tasks (+ 2 unknown tasks)
  synth_mixed.init_error.tsv initial error counts for DawidSkene(initial_error_strategy="addition")

Labels are strings everywhere. Only numpy is needed:
    python3 generate.py
Then run reference.py in a virtualenv with crowd-kit 1.4.2 to refresh ref/.
"""
import csv
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write_tsv(path, header, rows):
    with open(os.path.join(HERE, path), "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def handmade():
    # Small and readable: ties, a task with a single answer, a worker who is always wrong,
    # a task where the minority is right once skills are known.
    rows = [
        ("t1", "ann", "cat"), ("t1", "bob", "cat"), ("t1", "cid", "dog"),
        ("t2", "ann", "dog"), ("t2", "bob", "dog"), ("t2", "dan", "cat"),
        ("t3", "ann", "cat"), ("t3", "cid", "dog"),  # tie between ann and cid
        ("t4", "bob", "fox"),                          # a single answer
        ("t5", "ann", "fox"), ("t5", "bob", "fox"), ("t5", "cid", "cat"), ("t5", "dan", "dog"),
        ("t6", "cid", "cat"), ("t6", "dan", "dog"), ("t6", "eve", "fox"),  # three-way tie
        ("t7", "ann", "dog"), ("t7", "eve", "dog"), ("t7", "dan", "cat"),
        ("t8", "bob", "cat"), ("t8", "eve", "cat"), ("t8", "cid", "fox"), ("t8", "dan", "fox"),
        ("t9", "ann", "cat"), ("t9", "bob", "cat"), ("t9", "eve", "cat"),
        ("t10", "cid", "dog"), ("t10", "dan", "fox"), ("t10", "eve", "dog"), ("t10", "ann", "dog"),
    ]
    write_tsv("handmade.tsv", ["task", "worker", "label"], rows)


def simulate(name, seed, classes, n_tasks, n_workers, answers_per_task, priors, make_worker):
    """answers_per_task: int, or (lo, hi) for a uniform count per task."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    truth = rng.choice(k, size=n_tasks, p=priors)
    # confusion[w][true] = distribution of the observed label
    confusion = [make_worker(rng, k, w) for w in range(n_workers)]
    activity = rng.gamma(2.0, 1.0, size=n_workers)  # some workers answer much more
    activity /= activity.sum()
    rows = []
    for t in range(n_tasks):
        if isinstance(answers_per_task, tuple):
            m = int(rng.integers(answers_per_task[0], answers_per_task[1] + 1))
        else:
            m = answers_per_task
        workers = rng.choice(n_workers, size=m, replace=False, p=activity)
        for w in workers:
            obs = rng.choice(k, p=confusion[w][truth[t]])
            rows.append((f"t{t:04d}", f"w{w:03d}", classes[obs]))
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    write_tsv(f"{name}.tsv", ["task", "worker", "label"], rows)
    write_tsv(f"{name}.truth.tsv", ["task", "label"],
              [(f"t{t:04d}", classes[truth[t]]) for t in range(n_tasks)])
    return truth


def one_coin(acc, k):
    m = np.full((k, k), (1 - acc) / (k - 1))
    np.fill_diagonal(m, acc)
    return m


def mixed_worker(rng, k, w):
    u = rng.random()
    if u < 0.4:
        return one_coin(rng.uniform(0.85, 0.95), k)
    if u < 0.8:
        return one_coin(rng.uniform(0.6, 0.75), k)
    return np.full((k, k), 1.0 / k)  # spammer


def spammy_worker(rng, k, w):
    u = rng.random()
    if u < 0.3:
        return one_coin(rng.uniform(0.8, 0.95), k)
    if u < 0.5:  # biased: answers the first class most of the time
        m = np.full((k, k), 0.1 / (k - 1))
        m[:, 0] = 0.9
        return m
    return np.full((k, k), 1.0 / k)


def imbalance_worker(rng, k, w):
    acc = rng.uniform(0.55, 0.9)
    m = np.zeros((k, k))
    for c in range(k):
        m[c, c] = acc
        rest = 1 - acc
        # errors lean towards the majority class 0
        if c == 0:
            m[c, 1:] = rest / (k - 1)
        else:
            m[c, 0] = rest * 0.7
            others = [j for j in range(k) if j not in (0, c)]
            m[c, others] = rest * 0.3 / len(others)
    return m


def sparse_worker(rng, k, w):
    return one_coin(rng.beta(4, 2) * (1 - 1.0 / k) + 1.0 / k, k)


def confusion_worker(rng, k, w):
    m = np.zeros((k, k))
    for c in range(k):
        diag = rng.uniform(0.45, 0.9)
        m[c, c] = diag
        neighbour = (c + 1 + int(rng.integers(0, k - 1))) % k
        if neighbour == c:
            neighbour = (c + 1) % k
        m[c, neighbour] += (1 - diag) * 0.8
        spread = (1 - diag) * 0.2 / (k - 1)
        for j in range(k):
            if j != c:
                m[c, j] += spread
    return m


def main():
    handmade()
    simulate("synth_mixed", 11, ["a", "b", "c"], 400, 40, 5, [0.4, 0.35, 0.25], mixed_worker)
    simulate("synth_spammy", 12, ["no", "yes"], 450, 50, 7, [0.5, 0.5], spammy_worker)
    simulate("synth_imbalance", 13, ["0", "1", "2", "3"], 600, 30, 5,
             [0.75, 0.15, 0.07, 0.03], imbalance_worker)
    simulate("synth_sparse", 14, ["x", "y", "z"], 1000, 300, (1, 3), [1 / 3] * 3, sparse_worker)
    # Overlap 3, 4 classes, 600 workers over 6000 tasks (30 answers per worker on average,
    # gamma-distributed, so many workers have only a few): a 1-1-1 first vote on ~9 % of the
    # tasks, where Wawa's and ZBS's skills depend on how the vote's ties are broken.
    simulate("synth_overlap3", 16, ["c1", "c2", "c3", "c4"], 6000, 600, 3, [0.25] * 4,
             sparse_worker)
    truth = simulate("synth_confusion", 15, ["A", "B", "C", "D", "E"], 500, 25, 6,
                     [0.2] * 5, confusion_worker)
    classes = ["A", "B", "C", "D", "E"]
    gold = [(f"t{t:04d}", classes[truth[t]]) for t in range(60)]
    gold += [("t9998", "A"), ("t9999", "C")]  # unknown tasks: ignored, as in crowd-kit
    write_tsv("synth_confusion.gold.tsv", ["task", "label"], gold)
    # Historical counts for a few workers (addition strategy): 9 right, 1 wrong per class.
    init = []
    labels = ["a", "b", "c"]
    for w in ["w000", "w001", "w002", "w003", "w004"]:
        for obs in labels:
            for true in labels:
                init.append((w, obs, true, 9 if obs == true else 1))
    write_tsv("synth_mixed.init_error.tsv", ["worker", "label", "true_label", "count"], init)


if __name__ == "__main__":
    main()
