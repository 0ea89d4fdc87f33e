"""Constructor arguments that discovered estimators cannot do without.

``all_estimators()`` finds every public estimator; most are constructible
with no arguments. The others are listed here by class name, as a function of
the modality names (a utilization target names the modalities). A new
estimator with a required argument fails ``test_every_estimator_is_constructible``
in ``test_sklearn_api.py`` until it is added here.
"""

from collections.abc import Callable, Sequence
from typing import Any

from sklearn.preprocessing import StandardScaler


def _target(modalities: Sequence[str]) -> dict[str, Any]:
    return {"target": {m: 1.0 / len(modalities) for m in modalities}}


REQUIRED_ARGS: dict[str, Callable[[Sequence[str]], dict[str, Any]]] = {
    "UtilizationTarget": _target,
    "AttributionRegularizer": _target,
    "ModalityTransformer": lambda modalities: {
        "transformers": {m: StandardScaler() for m in modalities}
    },
}


def construct(cls: type, modalities: Sequence[str] = ("a", "b")) -> Any:
    """``cls(**required arguments)``; a ``TypeError`` says what to add here."""
    kwargs = REQUIRED_ARGS.get(cls.__name__, lambda _: {})(modalities)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TypeError(
            f"{cls.__name__} (found by mmexplain.discovery.all_estimators) cannot be "
            f"constructed from tests/_required_args.py: {exc}. Add its required "
            "constructor arguments to REQUIRED_ARGS there."
        ) from exc
