"""The result object every explainer returns."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ModalityExplanation"]


class ModalityExplanation:
    """How a model uses each modality, as measured by one explainer.

    Common attributes
    -----------------
    modalities : tuple of str
    method : str
        'permutation', 'conditional', 'shapley' or 'attribution'.
    params : dict
        Settings that produced the result (scoring, ablation/baseline,
        n_repeats, random_state, fast path or full forward, ...).
    shares : ndarray of shape (M,)
        Share of each modality in percent; sums to 100 where defined (NaN
        when no modality contributes).

    Method-specific attributes (None when not applicable)
    -----------------------------------------------------
    permutation: ``importances`` (M, n_repeats), ``importances_mean``,
    ``importances_std``, ``baseline_score``, ``utilization`` (= shares).
    conditional: ``score_full``, ``score_without`` (M,), ``score_reference``
    (M,: the score each rate is relative to), ``rates`` (M,) = u(m | rest),
    ``d_util`` (two modalities).
    shapley: ``values`` (N, M), ``base_values`` (N,), ``mean_values`` (M,),
    ``standard_errors`` (Monte-Carlo only); :meth:`to_shap`.
    attribution: ``sample_shares`` (N, M).
    """

    def __init__(
        self,
        *,
        modalities: tuple[str, ...],
        method: str,
        params: dict[str, Any],
        shares: np.ndarray,
        **fields: Any,
    ) -> None:
        self.modalities = tuple(modalities)
        self.method = method
        self.params = dict(params)
        self.shares = np.asarray(shares, dtype=float)
        for name in (
            "importances",
            "importances_mean",
            "importances_std",
            "baseline_score",
            "score_full",
            "score_without",
            "score_reference",
            "rates",
            "d_util",
            "values",
            "base_values",
            "mean_values",
            "standard_errors",
            "sample_shares",
            "scoring",
        ):
            setattr(self, name, fields.pop(name, None))
        if fields:
            raise TypeError(f"unexpected result fields {sorted(fields)}")

    # -- aliases ----------------------------------------------------------
    @property
    def utilization(self) -> np.ndarray:
        """Modality utilization in percent (same as ``shares``)."""
        return self.shares

    def __repr__(self) -> str:
        body = ", ".join(
            f"{m}={s:.1f}%" if np.isfinite(s) else f"{m}=nan"
            for m, s in zip(self.modalities, self.shares)
        )
        return f"ModalityExplanation(method={self.method!r}, {body})"

    # -- export -----------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """Plain-Python summary: per-modality numbers keyed by modality name."""
        out: dict[str, Any] = {
            "method": self.method,
            "modalities": list(self.modalities),
            "params": dict(self.params),
            "shares": dict(zip(self.modalities, self.shares.tolist())),
        }
        per_mod = {
            "importances_mean": self.importances_mean,
            "importances_std": self.importances_std,
            "score_without": self.score_without,
            "rates": self.rates,
            "mean_values": self.mean_values,
            "standard_errors": self.standard_errors,
        }
        for key, arr in per_mod.items():
            if arr is not None:
                arr = np.asarray(arr)
                if arr.ndim == 1:
                    out[key] = dict(zip(self.modalities, arr.tolist()))
                else:  # per-sample standard errors: report their mean
                    out[key] = dict(zip(self.modalities, arr.mean(axis=0).tolist()))
        for key in ("baseline_score", "score_full", "d_util"):
            value = getattr(self, key)
            if value is not None:
                out[key] = float(value)
        return out

    def to_frame(self) -> Any:
        """One row per modality (pandas ``DataFrame``; pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on environment
            raise ImportError("to_frame() needs pandas: pip install pandas") from exc
        data: dict[str, Any] = {"share_percent": self.shares}
        for key in (
            "importances_mean",
            "importances_std",
            "score_without",
            "rates",
            "mean_values",
        ):
            arr = getattr(self, key)
            if arr is not None:
                data[key] = np.asarray(arr)
        if self.standard_errors is not None:
            se = np.asarray(self.standard_errors)
            data["standard_error"] = se if se.ndim == 1 else se.mean(axis=0)
        frame = pd.DataFrame(data, index=pd.Index(self.modalities, name="modality"))
        frame.attrs["method"] = self.method
        return frame

    def plot(
        self, ax: Any = None, *, title: str | None = None, color: Any = None
    ) -> Any:
        """Bar chart of the modality shares (error bars from repeats / sampling).

        Returns the matplotlib ``Axes``.
        """
        from mmexplain.plotting import plot_shares

        return plot_shares(self, ax=ax, title=title, color=color)

    def share_errors(self) -> np.ndarray | None:
        """Standard deviation of the shares, in percent, where repeats exist."""
        if self.importances is not None and np.asarray(self.importances).shape[1] > 1:
            imp = np.clip(np.asarray(self.importances, dtype=float), 0, None)
            tot = imp.sum(axis=0, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_repeat = 100 * imp / tot
            per_repeat = per_repeat[:, np.isfinite(per_repeat).all(axis=0)]
            return per_repeat.std(axis=1) if per_repeat.size else None
        if self.sample_shares is not None:
            ss = np.asarray(self.sample_shares) * 100
            return ss.std(axis=0) / np.sqrt(max(len(ss), 1))
        return None

    def to_shap(self) -> Any:
        """The Shapley values as a ``shap.Explanation`` (samples x modalities).

        Usable with ``shap.plots.bar``, ``shap.plots.beeswarm`` and, for one
        sample (``expl[i]``), ``shap.plots.waterfall``.
        """
        if self.method != "shapley" or self.values is None:
            raise ValueError("to_shap() needs a Shapley explanation (ModalityShapley)")
        import shap

        values = np.asarray(self.values, dtype=float)
        return shap.Explanation(
            values=values,
            base_values=np.asarray(self.base_values, dtype=float),
            data=np.ones_like(values),
            feature_names=list(self.modalities),
        )
