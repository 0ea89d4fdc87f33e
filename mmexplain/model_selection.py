"""Explanations over folds and training seeds: the explainers' ``cross_validate``.

A modality share measured on one trained network is one draw: another
training seed or another split of the data gives another network and another
share. :func:`cross_explain` refits an estimator on every cross-validation
fold (and every seed), explains each fit on its held-out fold (and, on
request, on its training fold), and returns the distribution as a
:class:`CrossExplanation`. Wu et al. (2022) report ``d_util`` and ``d_speed``
over many such runs; Singh et al. (2023) compare utilization across
initializations. Runs are independent and go through joblib, like
scikit-learn's ``cross_validate`` (``n_jobs``, any joblib backend, Dask
included).
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing

__all__ = ["CrossExplanation", "cross_explain"]


def _take(X: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of a modality mapping, a torch Dataset or a 2-D array/frame."""
    if isinstance(X, Mapping):
        from mmexplain.data import ModalityDict

        return ModalityDict({m: _safe_indexing(v, index) for m, v in X.items()})
    from mmexplain.data.sources import is_dataset

    if is_dataset(X):
        from torch.utils.data import Subset

        return Subset(X, index.tolist())
    return _safe_indexing(X, index)


def _n_rows(X: Any) -> int:
    if isinstance(X, Mapping):
        lengths = {len(v) for v in X.values()}
        if len(lengths) != 1:
            raise ValueError(
                f"the modalities of X have different numbers of rows: {sorted(lengths)}"
            )
        return lengths.pop()
    return len(X)


def _seed_list(seeds: Any) -> list[int | None]:
    if seeds is None:
        return [None]
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1 when an integer, got {seeds}")
        return list(range(int(seeds)))
    if isinstance(seeds, Iterable) and not isinstance(seeds, str | bytes):
        out = list(seeds)
        if not out or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in out
        ):
            raise ValueError(
                f"seeds must be None, a positive integer or a non-empty list of integers, got {seeds!r}"
            )
        if len(set(out)) != len(out):
            raise ValueError(f"seeds has duplicates: {out}")
        return [int(s) for s in out]
    raise TypeError(
        f"seeds must be None, an integer or a list of integers, got {type(seeds).__name__}"
    )


def _seed_param(estimator: Any, seed_param: str | None) -> str:
    """The parameter that receives each seed ('random_state', or a nested one)."""
    params = estimator.get_params(deep=True)
    if seed_param is not None:
        if seed_param not in params:
            raise ValueError(
                f"seed_param={seed_param!r} is not a parameter of "
                f"{type(estimator).__name__}"
            )
        return seed_param
    if "random_state" in params:
        return "random_state"
    nested = sorted(
        (k for k in params if k.endswith("__random_state")),
        key=lambda k: (k.count("__"), k),
    )
    steps = (
        [k for k in nested if k.count("__") == nested[0].count("__")] if nested else []
    )
    if len(steps) == 1:
        return steps[0]
    raise ValueError(
        f"cannot tell which parameter of {type(estimator).__name__} takes the seed "
        f"(candidates: {nested or 'none'}); pass seed_param='<step>__random_state'"
    )


def _last_value(history: Any, keys: tuple[str, ...]) -> float:
    """The last epoch's value of the first of ``keys`` the history has (NaN if none)."""
    if history is None or not len(history):
        return float("nan")
    last = history[-1]
    for key in keys:
        if key in last:
            try:
                return float(last[key])
            except (TypeError, ValueError):
                return float("nan")
    return float("nan")


def _final_net(estimator: Any) -> Any:
    while hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def _run_one(
    estimator: Any,
    explainer: Any,
    X: Any,
    y: Any,
    train: np.ndarray,
    test: np.ndarray,
    seed: int | None,
    seed_param: str | None,
    fold: int,
    explain_train: bool,
    fit_params: dict[str, Any],
    return_estimator: bool,
) -> dict[str, Any]:
    est = clone(estimator)
    if seed is not None and seed_param is not None:
        est.set_params(**{seed_param: seed})
    X_train, X_test = _take(X, train), _take(X, test)
    y_train = None if y is None else _safe_indexing(y, train)
    y_test = None if y is None else _safe_indexing(y, test)
    t0 = time.perf_counter()
    est.fit(X_train, y_train, **fit_params)
    fit_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    held_out = clone(explainer).explain(est, X_test, y_test)
    explain_time = time.perf_counter() - t0
    on_train = (
        clone(explainer).explain(est, X_train, y_train) if explain_train else None
    )
    net = _final_net(est)
    history = getattr(net, "history", None)
    return {
        "seed": seed,
        "fold": fold,
        "held_out": held_out,
        "train": on_train,
        "score": float(est.score(X_test, y_test)),
        "d_util": float("nan")
        if getattr(held_out, "d_util", None) is None
        else float(held_out.d_util),
        "d_speed": _last_value(history, ("d_speed", "greedy_d_speed")),
        "fit_time": fit_time,
        "explain_time": explain_time,
        "estimator": est if return_estimator else None,
    }


class CrossExplanation:
    """Explanations of one estimator refitted over folds and seeds.

    Made by :func:`cross_explain`. Arrays are indexed ``[seed, fold, ...]``.

    Parameters
    ----------
    runs : list of dict
        One record per (seed, fold), seed-major, as :func:`cross_explain`
        makes them.
    seeds : list of int or None
    n_splits : int

    Attributes
    ----------
    modalities : tuple of str
    method : str
        The explainer's method ('permutation', 'conditional', 'shapley',
        'attribution').
    seeds : list of int or None
        The training seeds (``[None]``: the estimator's own ``random_state``).
    n_splits : int
    shares : ndarray of shape (n_seeds, n_splits, M)
        Modality shares in percent on each held-out fold.
    train_shares : ndarray of shape (n_seeds, n_splits, M) or None
        The same on each training fold (``explain_train=True``).
    scores : ndarray of shape (n_seeds, n_splits)
        The estimator's ``score`` on each held-out fold.
    d_util : ndarray of shape (n_seeds, n_splits)
        The held-out explanation's ``d_util`` (conditional utilization; NaN
        for other explainers).
    d_speed : ndarray of shape (n_seeds, n_splits)
        The last epoch's ``d_speed`` (``ConditionalLearningSpeed`` callback)
        or ``greedy_d_speed`` (``GreedyBalancer``) in the training history;
        NaN when neither was recorded.
    fit_times, explain_times : ndarray of shape (n_seeds, n_splits)
        Seconds.
    explanations, train_explanations : list of lists of ModalityExplanation
        ``[seed][fold]`` (``train_explanations`` None unless requested).
    estimators : list of lists of estimators or None
        The fitted estimators (``return_estimator=True``).
    """

    def __init__(self, runs: list[dict[str, Any]], seeds: list[Any], n_splits: int):
        grid = [
            [runs[s * n_splits + f] for f in range(n_splits)] for s in range(len(seeds))
        ]
        first = grid[0][0]["held_out"]
        self.modalities = tuple(first.modalities)
        self.method = first.method
        self.seeds = list(seeds)
        self.n_splits = int(n_splits)
        self.explanations = [[r["held_out"] for r in row] for row in grid]
        self.shares = np.array(
            [
                [np.asarray(e.shares, dtype=float) for e in row]
                for row in self.explanations
            ]
        )
        if first is not None and grid[0][0]["train"] is not None:
            self.train_explanations: list[list[Any]] | None = [
                [r["train"] for r in row] for row in grid
            ]
            self.train_shares: np.ndarray | None = np.array(
                [
                    [np.asarray(e.shares, dtype=float) for e in row]
                    for row in self.train_explanations
                ]
            )
        else:
            self.train_explanations, self.train_shares = None, None

        def field(name: str) -> np.ndarray:
            return np.array([[float(r[name]) for r in row] for row in grid])

        self.scores = field("score")
        self.d_util = field("d_util")
        self.d_speed = field("d_speed")
        self.fit_times = field("fit_time")
        self.explain_times = field("explain_time")
        est = [[r["estimator"] for r in row] for row in grid]
        self.estimators = est if est[0][0] is not None else None

    # -- summaries -----------------------------------------------------------
    @property
    def shares_mean(self) -> np.ndarray:
        """Mean held-out share of each modality over seeds and folds, in percent."""
        return self.shares.reshape(-1, len(self.modalities)).mean(axis=0)

    @property
    def shares_std(self) -> np.ndarray:
        """Standard deviation (ddof=1; 0 for one run) of the held-out shares."""
        flat = self.shares.reshape(-1, len(self.modalities))
        if len(flat) < 2:
            return np.zeros(len(self.modalities))
        return flat.std(axis=0, ddof=1)

    def summary(self) -> Any:
        """Per modality: mean, std, min, median and max of the shares (pandas DataFrame).

        With ``explain_train=True`` the training-fold columns follow, prefixed
        ``train_``, and ``gap`` = mean train share - mean held-out share.
        """
        import pandas as pd

        def stats(arr: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
            flat = arr.reshape(-1, len(self.modalities))
            return {
                f"{prefix}mean": flat.mean(axis=0),
                f"{prefix}std": flat.std(axis=0, ddof=1)
                if len(flat) > 1
                else np.zeros(flat.shape[1]),
                f"{prefix}min": flat.min(axis=0),
                f"{prefix}median": np.median(flat, axis=0),
                f"{prefix}max": flat.max(axis=0),
            }

        data = stats(self.shares, "")
        if self.train_shares is not None:
            data.update(stats(self.train_shares, "train_"))
            data["gap"] = data["train_mean"] - data["mean"]
        frame = pd.DataFrame(data, index=pd.Index(self.modalities, name="modality"))
        frame.attrs["method"] = self.method
        frame.attrs["runs"] = len(self.seeds) * self.n_splits
        return frame

    def to_frame(self) -> Any:
        """One row per (seed, fold, data, modality): long format for plotting or stats."""
        import pandas as pd

        rows = []
        parts = [("held-out", self.shares)]
        if self.train_shares is not None:
            parts.append(("train", self.train_shares))
        for data, arr in parts:
            for i, seed in enumerate(self.seeds):
                for f in range(self.n_splits):
                    for j, m in enumerate(self.modalities):
                        rows.append(
                            {
                                "seed": seed,
                                "fold": f,
                                "data": data,
                                "modality": m,
                                "share_percent": float(arr[i, f, j]),
                                "score": float(self.scores[i, f]),
                            }
                        )
        return pd.DataFrame(rows)

    def plot(self, ax: Any = None, *, title: str | None = None) -> Any:
        """Spread of the shares per modality over runs (held-out, and train if measured).

        Returns the matplotlib ``Axes``; see
        :func:`mmexplain.plotting.plot_share_spread`.
        """
        from mmexplain.plotting import plot_share_spread

        return plot_share_spread(self, ax=ax, title=title)

    def __repr__(self) -> str:
        body = ", ".join(
            f"{m}={mu:.1f}+-{sd:.1f}%"
            for m, mu, sd in zip(self.modalities, self.shares_mean, self.shares_std)
        )
        return (
            f"CrossExplanation(method={self.method!r}, runs={len(self.seeds)}x"
            f"{self.n_splits}, {body})"
        )


def cross_explain(
    estimator: Any,
    X: Any,
    y: Any,
    explainer: Any,
    *,
    cv: Any = 5,
    seeds: Any = None,
    seed_param: str | None = None,
    groups: Any = None,
    explain_train: bool = False,
    fit_params: dict[str, Any] | None = None,
    n_jobs: int | None = None,
    verbose: int = 0,
    pre_dispatch: str | int = "2*n_jobs",
    return_estimator: bool = False,
) -> CrossExplanation:
    """Refit on every fold and seed, explain each fit on its held-out fold.

    The explainers' analogue of scikit-learn's ``cross_validate``: for each
    training seed and each cross-validation split, a clone of ``estimator``
    (its seed parameter set to the seed) is fitted on the training fold and
    a clone of ``explainer`` explains it on the held-out fold (and on the
    training fold with ``explain_train=True``, to put training and held-out
    utilization side by side). The spread of the shares over runs is the
    variation a reader of one number does not see: over data splits and
    over training randomness.

    Parameters
    ----------
    estimator : estimator
        A :class:`~mmexplain.MultimodalClassifier` (or segmenter, or a
        Pipeline ending in one): cloned for every run, never fitted itself.
    X : mapping of str to array-like, torch Dataset, or 2-D array / DataFrame
        All the data (a 2-D ``X`` for a Pipeline that starts with
        :class:`~mmexplain.preprocessing.ModalitySplitter`).
    y : array-like
    explainer : explainer
        Any mmexplain explainer (``PermutationModalityImportance``,
        ``ConditionalUtilization``, ``ModalityShapley``,
        ``GradientModalityAttribution``); cloned for every run, so a fixed
        ``random_state`` gives every run the same permutation stream.
    cv : int, cross-validation generator or iterable, default=5
        As in scikit-learn (``check_cv``): an int means ``StratifiedKFold``
        for a classifier, ``KFold`` otherwise.
    seeds : None, int or list of int, default=None
        Training seeds. None: one run per fold with the estimator's own
        seed; an int ``k``: seeds ``0..k-1``; a list: those seeds.
    seed_param : str or None, default=None
        The parameter that receives each seed. None: ``'random_state'``, or
        for a Pipeline the one step's ``<step>__random_state``.
    groups : array-like or None
        Group labels for group-aware splitters (``GroupKFold``).
    explain_train : bool, default=False
        Also explain each fit on its training fold.
    fit_params : dict or None
        Passed to ``fit`` (per-row arrays are not sliced: pass them only
        when they do not depend on the rows).
    n_jobs : int or None, default=None
        Runs in parallel through joblib: processes (the default loky
        backend) or Dask workers (``joblib.parallel_backend('dask')``) give
        the same numbers as ``n_jobs=1``. Not the threading backend: a
        seeded fit draws from torch's global generator under the seed, which
        threads of one process share, so concurrent fits would not be
        reproducible.
    verbose : int, default=0
    pre_dispatch : str or int, default='2*n_jobs'
    return_estimator : bool, default=False
        Keep every fitted estimator in ``estimators``.

    Returns
    -------
    CrossExplanation

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.explainers import PermutationModalityImportance
    >>> from mmexplain.model_selection import cross_explain
    >>> X, y = make_multimodal_classification(n_samples=120, random_state=0)
    >>> result = cross_explain(
    ...     MultimodalClassifier(max_epochs=3),
    ...     X, y, PermutationModalityImportance(n_repeats=2, random_state=0),
    ...     cv=3, seeds=2, explain_train=True)
    >>> result.shares.shape, result.train_shares.shape
    ((2, 3, 2), (2, 3, 2))
    >>> list(result.summary().columns[:3])
    ['mean', 'std', 'min']
    """
    if not hasattr(explainer, "explain"):
        raise TypeError(
            f"explainer must be an mmexplain explainer (with explain()), got "
            f"{type(explainer).__name__}"
        )
    if not hasattr(estimator, "fit"):
        raise TypeError(f"estimator must have fit(), got {type(estimator).__name__}")
    seed_list = _seed_list(seeds)
    param = None if seed_list == [None] else _seed_param(estimator, seed_param)
    n = _n_rows(X)
    if y is not None and len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    splitter = check_cv(cv, y, classifier=is_classifier(estimator))
    dummy = np.zeros((n, 1))
    splits = list(splitter.split(dummy, y, groups))
    for f, (train, test) in enumerate(splits):
        if len(test) == 0 or len(train) == 0:
            raise ValueError(f"fold {f} has an empty training or held-out part")
    parallel = Parallel(n_jobs=n_jobs, verbose=verbose, pre_dispatch=pre_dispatch)
    runs = parallel(
        delayed(_run_one)(
            estimator,
            explainer,
            X,
            y,
            train,
            test,
            seed,
            param,
            f,
            explain_train,
            dict(fit_params or {}),
            return_estimator,
        )
        for seed in seed_list
        for f, (train, test) in enumerate(splits)
    )
    return CrossExplanation(list(runs), seed_list, len(splits))
