"""Window baselines: vectorized windowing, LR training and naive Bayes against per-window loops, same inputs.

* windowing: :func:`make_windows` + one gather of all windows, against a
  per-track, per-window Python loop that slices and flattens each window;
* logistic regression: one SGD epoch of :func:`beatdbn.train.baselines.sgd_epoch`
  (minibatches gathered from the zero-copy window view, batch 100, sum
  loss, one torch thread as ``run_logreg`` uses), against the same SGD done
  window by window in NumPy (slice the window from its track, softmax,
  accumulate the gradient, step every 100 windows), and against itself with
  torch's default thread count;
* naive Bayes: :class:`WindowedNaiveBayes` fit + window posteriors
  (scikit-learn GaussianNB on whole arrays), against per-window Python loops
  for the class sums of squares and the log-likelihoods.

The loop baselines run on a slice of the windows and are scaled to the
whole; every figure reports windows/s (and beats/s for training: track beats
seen per second of an epoch).
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks._common import best_of, threads as _threads
from beatdbn.models.logreg import WindowedLogReg
from beatdbn.models.naive_bayes import WindowedNaiveBayes
from beatdbn.models.windows import Standardizer, make_windows
from beatdbn.train.baselines import sgd_epoch

WINDOW, STRIDE, BATCH, N_CLASSES = 32, 32, 100, 12


def _tracks(rng, n_tracks):
    lengths = rng.integers(200, 600, n_tracks)
    return [rng.normal(size=(n, 24)).astype(np.float32) for n in lengths], rng.integers(0, N_CLASSES, n_tracks)


def _loop_windows(tracks):
    rows, owner = [], []
    for i, t in enumerate(tracks):
        for s in range(0, len(t) - WINDOW + 1, STRIDE):
            rows.append(t[s:s + WINDOW].reshape(-1))
            owner.append(i)
    return np.stack(rows), np.array(owner)


def _loop_sgd(tracks, labels, pairs, lr):
    """Per-window NumPy SGD with the sum loss: the straightforward way."""
    w = np.zeros((N_CLASSES, WINDOW * 24), np.float32)
    b = np.zeros(N_CLASSES, np.float32)
    gw, gb = np.zeros_like(w), np.zeros_like(b)
    for k, (i, s) in enumerate(pairs):
        x = tracks[i][s:s + WINDOW].reshape(-1)
        z = w @ x + b
        p = np.exp(z - z.max())
        p /= p.sum()
        p[labels[i]] -= 1.0
        gw += np.outer(p, x)
        gb += p
        if (k + 1) % BATCH == 0:
            w -= lr * gw
            b -= lr * gb
            gw[:] = 0
            gb[:] = 0
    return w


def _loop_nb(x, y):
    """Per-window loop for the class statistics and the per-window log-likelihoods."""
    n, d = x.shape
    s1, s2, cnt = np.zeros((N_CLASSES, d)), np.zeros((N_CLASSES, d)), np.zeros(N_CLASSES)
    for xi, yi in zip(x, y):
        s1[yi] += xi
        s2[yi] += xi * xi
        cnt[yi] += 1
    mean = s1 / np.maximum(cnt, 1)[:, None]
    var = s2 / np.maximum(cnt, 1)[:, None] - mean ** 2 + 1e-9
    log_prior = np.log(np.maximum(cnt, 1) / n)
    out = np.empty((n, N_CLASSES))
    for k, xi in enumerate(x):
        jll = log_prior - 0.5 * (np.log(2 * np.pi * var) + (xi - mean) ** 2 / var).sum(axis=1)
        out[k] = jll - np.logaddexp.reduce(jll)
    return out


def run(results, quick: bool = False) -> None:
    rng = np.random.default_rng(0)
    tracks, labels = _tracks(rng, 150 if quick else 1000)
    std = Standardizer.fit(tracks)
    tracks = [std.transform(t) for t in tracks]
    n_beats = sum(len(t) for t in tracks)

    # windowing
    w = make_windows(tracks, window=WINDOW, stride=STRIDE)
    n_win = len(w)
    sub = tracks[: max(1, len(tracks) // 5)]
    n_sub = sum(1 + (len(t) - WINDOW) // STRIDE for t in sub)
    t_fast = best_of(lambda: make_windows(tracks, window=WINDOW, stride=STRIDE).windows(), repeat=3)
    t_loop = best_of(lambda: _loop_windows(sub), repeat=2) * n_win / n_sub
    results.add(f"baselines: windowing ({n_win:,} windows of 32 beats, all gathered)", n_win / t_fast, "windows/s",
                baseline="per-window Python slicing loop", baseline_value=n_win / t_loop)

    # logistic regression: one SGD epoch
    view, starts = w.torch_view()
    y = torch.from_numpy(labels[w.track])
    model = WindowedLogReg(w.n_inputs, N_CLASSES)
    opt = torch.optim.SGD(model.parameters(), lr=5e-5)
    order = torch.from_numpy(np.random.default_rng(1).permutation(n_win))
    threads = torch.get_num_threads()
    t_multi = best_of(lambda: sgd_epoch(model, opt, view, starts, y, order, batch_size=BATCH), repeat=2)
    with _threads(1):  # as `beatdbn --threads 1` trains
        t_fast = best_of(lambda: sgd_epoch(model, opt, view, starts, y, order, batch_size=BATCH), repeat=3)
    pairs = [(int(w.track[k]), int(w.starts[k] - w.offsets[w.track[k]])) for k in order[: min(n_win, 2000)].tolist()]
    t_loop = best_of(lambda: _loop_sgd(tracks, labels, pairs, 5e-5), repeat=2) * n_win / len(pairs)
    note = f"{n_beats:,} beats, batch {BATCH}, 768 -> {N_CLASSES}, 1 torch thread (as run_logreg)"
    results.add("baselines: windowed LR SGD epoch", n_win / t_fast, "windows/s",
                baseline="per-window NumPy SGD loop", baseline_value=n_win / t_loop, note=note)
    results.add("baselines: windowed LR SGD epoch (track beats)", n_beats / t_fast, "beats/s",
                baseline="per-window NumPy SGD loop", baseline_value=n_beats / t_loop, note=note)
    results.add("baselines: windowed LR SGD epoch, 1 torch thread", n_win / t_fast, "windows/s",
                baseline=f"torch default ({threads} threads)", baseline_value=n_win / t_multi,
                note="why run_logreg trains single-threaded on the CPU")

    # naive Bayes: fit + window posteriors
    def nb():
        m = WindowedNaiveBayes(n_classes=N_CLASSES).fit(w, labels)
        return m.window_log_proba(w)

    x = w.windows()
    k = min(n_win, 1500)
    t_fast = best_of(nb, repeat=3)
    t_loop = best_of(lambda: _loop_nb(x[:k], labels[w.track[:k]]), repeat=2) * n_win / k
    results.add("baselines: GaussianNB fit + predict", n_win / t_fast, "windows/s",
                baseline="per-window Python loop", baseline_value=n_win / t_loop)
