"""scikit-learn's data-free API checks for every estimator and balancer."""

import pytest
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks as ec

from mmexplain import ModalityTransformer, MultimodalClassifier, MultimodalSegmenter
from mmexplain.balancers import (
    OGMGE,
    AttributionRegularizer,
    GreedyBalancer,
    ModalityDropout,
    SampleValuation,
    UtilizationTarget,
)
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)

API_CHECKS = [
    ec.check_estimator_cloneable,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_parameters_default_constructible,
    ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_estimator_repr,
    ec.check_estimator_tags_renamed,
    ec.check_valid_tag_types,
    ec.check_mixin_order,
]

ESTIMATORS = [
    MultimodalClassifier(),
    MultimodalClassifier(balancer=ModalityDropout(p=0.1)),
    MultimodalSegmenter(balancer=ModalityDropout()),
    ModalityDropout(),
    GreedyBalancer(),
    OGMGE(),
    UtilizationTarget({"a": 0.5, "b": 0.5}),
    AttributionRegularizer({"a": 0.5, "b": 0.5}),
    SampleValuation(),
    ModalityTransformer({"eo": StandardScaler()}),
    PermutationModalityImportance(),
    ConditionalUtilization(),
    ModalityShapley(),
    GradientModalityAttribution(),
]
# skorch nets set history_/initialized_/virtual_params_ in __init__ by design,
# so check_no_attributes_set_in_init applies only to the pure sklearn objects.
PURE = [e for e in ESTIMATORS if not hasattr(e, "module")]


def _id(est):
    return type(est).__name__ + (
        "+balancer" if getattr(est, "balancer", None) is not None else ""
    )


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_id)
@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_api_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))


@pytest.mark.parametrize("estimator", PURE, ids=_id)
def test_no_attributes_set_in_init(estimator):
    ec.check_no_attributes_set_in_init(type(estimator).__name__, clone(estimator))


def test_nested_params_in_get_params():
    clf = MultimodalClassifier(balancer=ModalityDropout(p=0.25), module__hidden=(8,))
    p = clf.get_params()
    assert p["balancer__p"] == 0.25 and p["module__hidden"] == (8,)
    assert set(clone(clf).get_params()) == set(p)
    mt = ModalityTransformer({"eo": StandardScaler()})
    assert mt.get_params()["eo__with_mean"] is True
    mt.set_params(eo__with_mean=False)
    assert mt.transformers["eo"].with_mean is False
