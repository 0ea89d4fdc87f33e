"""Explainers: how much does a trained model use each modality?

All share one evaluation engine (:mod:`mmexplain.explainers._engine`) and one
contract: ``explain(model, X, y) -> ModalityExplanation``, ``fit`` (stores
``explanation_`` and a headline attribute), ``score`` (higher is better, 0 is
perfect balance) and ``explainer(estimator, X, y)`` as a scikit-learn scorer.

``model`` may be a fitted estimator, an ``nn.Module``, a :class:`ForwardModel`
(any callable, like captum's ``forward_func``), or a fitted ``Pipeline`` /
search ending in one (:func:`unwrap_model` says what the explainers then run).
"""

from mmexplain.explainers._adapter import ForwardModel, unwrap_model
from mmexplain.explainers.attribution import GradientModalityAttribution
from mmexplain.explainers.base import BaseModalityExplainer
from mmexplain.explainers.conditional import ConditionalUtilization
from mmexplain.explainers.permutation import PermutationModalityImportance
from mmexplain.explainers.shapley import ModalityShapley

__all__ = [
    "BaseModalityExplainer",
    "ConditionalUtilization",
    "ForwardModel",
    "GradientModalityAttribution",
    "ModalityShapley",
    "PermutationModalityImportance",
    "unwrap_model",
]
