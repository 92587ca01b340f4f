//! Answers interned to dense indices, and the flat by-task / by-worker index built per fit.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::AggregateError;

/// Strings interned to dense `u32` ids in order of first appearance (one shared allocation
/// per distinct string).
#[derive(Debug, Clone, Default)]
struct Interner {
    ids: FxHashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        let name: Arc<str> = name.into();
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }
}

/// The answers to aggregate: `(task, worker, label)` triples, crowd-kit's three columns.
///
/// Task, worker and label strings are interned once, to dense indices in order of first
/// appearance; the answers themselves are three flat `u32` arrays. Every result refers to tasks
/// and workers by these indices ([`Answers::task_index`], [`Answers::task_name`], …), so the
/// names are stored once however many fits are made.
///
/// Labels are strings: `"1"`, `"1.0"` and `"one"` are three different labels. Classes are
/// ordered byte-wise (lexicographically) in every result, which is also the tie-breaking order.
///
/// Answers only grow ([`Answers::push`]), so the indices of earlier tasks and workers never
/// change: a fit made before more answers arrived can warm-start a refit (see
/// [`DawidSkene::refit`](super::DawidSkene::refit)).
///
/// Duplicate answers (the same worker answering the same task twice) are kept and counted, as
/// crowd-kit counts them.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    tasks: Interner,
    workers: Interner,
    labels: Interner,
    task: Vec<u32>,
    worker: Vec<u32>,
    label: Vec<u32>,
}

impl Answers {
    /// No answers.
    pub fn new() -> Self {
        Self::default()
    }

    /// No answers, with room for `answers` of them.
    pub fn with_capacity(answers: usize) -> Self {
        Self {
            task: Vec::with_capacity(answers),
            worker: Vec::with_capacity(answers),
            label: Vec::with_capacity(answers),
            ..Self::default()
        }
    }

    /// Adds one answer: `worker` gave `label` to `task`.
    pub fn push(&mut self, task: &str, worker: &str, label: &str) {
        self.task.push(self.tasks.intern(task));
        self.worker.push(self.workers.intern(worker));
        self.label.push(self.labels.intern(label));
    }

    /// The number of answers.
    pub fn len(&self) -> usize {
        self.task.len()
    }

    /// Whether there are no answers.
    pub fn is_empty(&self) -> bool {
        self.task.is_empty()
    }

    /// The number of distinct tasks.
    pub fn n_tasks(&self) -> usize {
        self.tasks.names.len()
    }

    /// The number of distinct workers.
    pub fn n_workers(&self) -> usize {
        self.workers.names.len()
    }

    /// The number of distinct labels.
    pub fn n_labels(&self) -> usize {
        self.labels.names.len()
    }

    /// The name of task `index` (`index < n_tasks()`).
    pub fn task_name(&self, index: usize) -> &str {
        &self.tasks.names[index]
    }

    /// The name of worker `index` (`index < n_workers()`).
    pub fn worker_name(&self, index: usize) -> &str {
        &self.workers.names[index]
    }

    /// The index of a task, if it has answers.
    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.tasks.get(name).map(|i| i as usize)
    }

    /// The index of a worker, if they gave answers.
    pub fn worker_index(&self, name: &str) -> Option<usize> {
        self.workers.get(name).map(|i| i as usize)
    }

    /// The distinct labels, sorted byte-wise: the class order of every result.
    pub fn classes(&self) -> Vec<Box<str>> {
        let mut classes: Vec<Box<str>> = self.labels.names.iter().map(|n| (**n).into()).collect();
        classes.sort_unstable();
        classes
    }

    /// Answer `i` as `(task index, worker index, label)`.
    pub fn get(&self, i: usize) -> Option<(usize, usize, &str)> {
        Some((
            *self.task.get(i)? as usize,
            self.worker[i] as usize,
            &self.labels.names[self.label[i] as usize],
        ))
    }
}

impl<T: AsRef<str>, W: AsRef<str>, L: AsRef<str>> FromIterator<(T, W, L)> for Answers {
    fn from_iter<I: IntoIterator<Item = (T, W, L)>>(iter: I) -> Self {
        let mut answers = Answers::new();
        for (t, w, l) in iter {
            answers.push(t.as_ref(), w.as_ref(), l.as_ref());
        }
        answers
    }
}

/// The answers laid out for the fitting loops: classes in sorted order, answers grouped by task
/// and by worker (CSR: an offsets array and flat columns), input order kept inside each group.
#[derive(Debug)]
pub(crate) struct Index {
    /// Number of classes.
    pub(crate) k: usize,
    pub(crate) n_tasks: usize,
    pub(crate) n_workers: usize,
    /// Class names, sorted.
    pub(crate) classes: Vec<Box<str>>,
    /// The classes in the order their first answer was pushed ([`TieBreak::FirstSeen`]).
    ///
    /// [`TieBreak::FirstSeen`]: super::TieBreak::FirstSeen
    pub(crate) first_seen: Vec<u32>,
    /// Answers of task `t` are `t_off[t]..t_off[t + 1]`.
    pub(crate) t_off: Vec<u32>,
    pub(crate) t_worker: Vec<u32>,
    pub(crate) t_class: Vec<u32>,
    /// Whether the answer at this by-task position repeats an earlier identical
    /// `(task, worker, label)`; empty when there are no duplicates at all.
    pub(crate) t_dup: Vec<bool>,
    /// Answers of worker `w` are `w_off[w]..w_off[w + 1]` (only built by
    /// [`Index::with_workers`], empty otherwise).
    pub(crate) w_off: Vec<u32>,
    pub(crate) w_task: Vec<u32>,
    pub(crate) w_class: Vec<u32>,
}

impl Index {
    /// The by-task index only.
    pub(crate) fn build(answers: &Answers) -> Result<Index, AggregateError> {
        Self::make(answers, false)
    }

    /// The by-task and the by-worker index.
    pub(crate) fn with_workers(answers: &Answers) -> Result<Index, AggregateError> {
        Self::make(answers, true)
    }

    fn make(answers: &Answers, by_worker: bool) -> Result<Index, AggregateError> {
        if answers.is_empty() {
            return Err(AggregateError::Empty);
        }
        let n = answers.len();
        if n >= u32::MAX as usize {
            return Err(AggregateError::TooManyAnswers(n));
        }
        let n_tasks = answers.n_tasks();
        let n_workers = answers.n_workers();
        let mut order: Vec<u32> = (0..answers.n_labels() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            answers.labels.names[a as usize].cmp(&answers.labels.names[b as usize])
        });
        let mut class_of_label = vec![0u32; order.len()];
        for (class, &label) in order.iter().enumerate() {
            class_of_label[label as usize] = class as u32;
        }
        // Labels are interned in the order they were first pushed.
        let first_seen = class_of_label.clone();
        let classes = order
            .iter()
            .map(|&l| (*answers.labels.names[l as usize]).into())
            .collect();

        let t_off = offsets(&answers.task, n_tasks);
        let mut t_worker = vec![0u32; n];
        let mut t_class = vec![0u32; n];
        let mut t_fill = t_off.clone();
        for i in 0..n {
            let t = answers.task[i] as usize;
            let p = t_fill[t] as usize;
            t_fill[t] += 1;
            t_worker[p] = answers.worker[i];
            t_class[p] = class_of_label[answers.label[i] as usize];
        }
        let (mut w_off, mut w_task, mut w_class) = (Vec::new(), Vec::new(), Vec::new());
        if by_worker {
            w_off = offsets(&answers.worker, n_workers);
            w_task = vec![0u32; n];
            w_class = vec![0u32; n];
            let mut w_fill = w_off.clone();
            for i in 0..n {
                let w = answers.worker[i] as usize;
                let q = w_fill[w] as usize;
                w_fill[w] += 1;
                w_task[q] = answers.task[i];
                w_class[q] = class_of_label[answers.label[i] as usize];
            }
        }
        let t_dup = duplicates(&t_off, &t_worker, &t_class);
        Ok(Index {
            k: class_of_label.len(),
            n_tasks,
            n_workers,
            classes,
            first_seen,
            t_off,
            t_worker,
            t_class,
            t_dup,
            w_off,
            w_task,
            w_class,
        })
    }

    /// The by-task positions of task `t`'s answers.
    #[inline]
    pub(crate) fn task_range(&self, t: usize) -> std::ops::Range<usize> {
        self.t_off[t] as usize..self.t_off[t + 1] as usize
    }

    /// The by-worker positions of worker `w`'s answers.
    #[inline]
    pub(crate) fn worker_range(&self, w: usize) -> std::ops::Range<usize> {
        self.w_off[w] as usize..self.w_off[w + 1] as usize
    }

    pub(crate) fn n_answers(&self) -> usize {
        self.t_worker.len()
    }
}

/// CSR offsets from a column of group ids.
fn offsets(ids: &[u32], groups: usize) -> Vec<u32> {
    let mut off = vec![0u32; groups + 1];
    for &g in ids {
        off[g as usize + 1] += 1;
    }
    for g in 0..groups {
        off[g + 1] += off[g];
    }
    off
}

/// Marks repeated `(worker, class)` pairs inside each task; empty if there are none.
fn duplicates(t_off: &[u32], t_worker: &[u32], t_class: &[u32]) -> Vec<bool> {
    let mut dup: Vec<bool> = Vec::new();
    let mark = |dup: &mut Vec<bool>, p: usize| {
        if dup.is_empty() {
            *dup = vec![false; t_worker.len()];
        }
        dup[p] = true;
    };
    let mut scratch: Vec<(u32, u32, u32)> = Vec::new();
    for t in 0..t_off.len() - 1 {
        let (a, b) = (t_off[t] as usize, t_off[t + 1] as usize);
        if b - a <= 32 {
            // Few answers: compare pairs, no sorting.
            for p in a + 1..b {
                if (a..p).any(|q| t_worker[q] == t_worker[p] && t_class[q] == t_class[p]) {
                    mark(&mut dup, p);
                }
            }
            continue;
        }
        scratch.clear();
        scratch.extend((a..b).map(|p| (t_worker[p], t_class[p], p as u32)));
        scratch.sort_unstable();
        for pair in scratch.windows(2) {
            if pair[0].0 == pair[1].0 && pair[0].1 == pair[1].1 {
                mark(&mut dup, pair[1].2 as usize);
            }
        }
    }
    dup
}
