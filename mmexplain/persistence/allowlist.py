"""The classes a model file may name, and what loading may do with each.

Every class in a file is looked up here by its canonical name; nothing else
is ever imported or constructed by :func:`~mmexplain.persistence.load_model`
without ``trust_pickle``. Each allowed class has a *role*:

``'net'``
    a skorch estimator: parameters, fitted attributes, weights and history;
``'module'``
    an encoder instance given as a parameter (the encoders of
    ``module=LateFusionNet``): constructor arguments and weights;
``'fitted'``
    parameters and fitted attributes: public ones (``mean_``,
    ``transformers_``), and the few private ones a class needs to predict,
    each checked explicitly (``TransformedTargetRegressor._training_dim``);
``'params'``
    constructor parameters only;
``'class'``
    only referenced as a class (``module=MMTMNet``), never instantiated from
    the file.

mmexplain's own classes are derived from the class hierarchy, over the public
classes of :func:`mmexplain.discovery.public_classes` (canonical name: the
shortest public path):

- subclasses of :class:`~mmexplain.estimators.base.MultimodalNetMixin` are ``'net'``;
- concrete subclasses of :class:`~mmexplain.balancers.Balancer` and skorch
  ``Callback`` subclasses are ``'params'``;
- scikit-learn transformers (``TransformerMixin``) are ``'fitted'``;
- ``nn.Module`` encoders with a constructor-argument reader
  (:mod:`mmexplain.persistence._modules`) are ``'module'``;
- ``nn.Module`` networks with the model contract's methods
  (``encode``/``fuse``, or ``rebalancing``/``ablating``/``modality_parameters``;
  see :mod:`mmexplain.modules.contract`) are ``'class'``, and so are the
  mmexplain classes a ``'net'`` takes as class-valued defaults
  (``dataset=ModalityDataset``, ``iterator_train=TensorBatchIterator``);
- nothing else (explainers, results, containers, ``MMTM`` blocks,
  ``UNetEncoder``), nor the classes in :data:`REFUSED`.

So a new balancer, callback or fusion network exported by a public
namespace is saved and loaded without editing this package. A class that is
not exported by mmexplain (a ``Balancer`` subclass of your own) is refused.
Third-party classes (scikit-learn scalers, ``Pipeline`` and
``TransformedTargetRegressor``, torch losses and optimizers, ...) are listed
explicitly in :data:`THIRD_PARTY`.

Examples
--------
>>> from mmexplain.persistence.allowlist import allowed
>>> allowed()["mmexplain.balancers.OGMGE"]
(('mmexplain.balancers',), 'params')
>>> allowed()["mmexplain.MMTMNet"]
(('mmexplain',), 'class')
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

__all__ = [
    "REFUSED",
    "THIRD_PARTY",
    "allowed",
    "allowed_name",
    "canonical_name",
    "kind_of",
    "resolve",
    "role_of",
]

Entry = tuple[tuple[str, ...], str]

#: third-party classes: canonical name -> (modules where it may live, role)
THIRD_PARTY: dict[str, Entry] = {
    "sklearn.pipeline.Pipeline": (("sklearn.pipeline",), "params"),
    # a regressor fitted on a scaled target, at the root of a file (issue 22)
    "sklearn.compose.TransformedTargetRegressor": (("sklearn.compose",), "fitted"),
    **{
        f"sklearn.preprocessing.{name}": (("sklearn.preprocessing",), "fitted")
        for name in (
            "StandardScaler",
            "MinMaxScaler",
            "MaxAbsScaler",
            "RobustScaler",
            "Normalizer",
        )
    },
    "skorch.dataset.ValidSplit": (("skorch.dataset",), "params"),
    "skorch.callbacks.GradientNormClipping": (("skorch.callbacks",), "params"),
    "torch.utils.data.DataLoader": (("torch.utils.data",), "class"),
    **{
        f"torch.nn.{name}": (("torch.nn",), "class")
        for name in (
            "CrossEntropyLoss",
            "NLLLoss",
            "BCEWithLogitsLoss",
            "MSELoss",
            "L1Loss",
            "SmoothL1Loss",
            "HuberLoss",
        )
    },
    **{
        f"torch.optim.{name}": (("torch.optim",), "class")
        for name in ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad")
    },
}

#: public mmexplain classes the rules would allow but a model file may not
#: hold, with the reason
REFUSED: dict[str, str] = {
    "mmexplain.callbacks.UtilizationHistory": (
        "its parameters are evaluation data (X, y) and an explainer, which do not "
        "belong in a model file"
    ),
}

_NETWORK_METHODS = (
    ("encode", "fuse"),
    ("rebalancing", "ablating", "modality_parameters"),
)


def role_of(cls: type) -> str | None:
    """The role the hierarchy gives the mmexplain class ``cls`` (None: not allowed).

    Examples
    --------
    >>> from mmexplain import ModalityTransformer, MultimodalClassifier
    >>> from mmexplain.explainers import ModalityShapley
    >>> from mmexplain.persistence.allowlist import role_of
    >>> role_of(MultimodalClassifier), role_of(ModalityTransformer), role_of(ModalityShapley)
    ('net', 'fitted', None)
    """
    from sklearn.base import TransformerMixin
    from skorch.callbacks import Callback
    from torch import nn

    from mmexplain.balancers import Balancer
    from mmexplain.estimators.base import MultimodalNetMixin
    from mmexplain.persistence._modules import encoder_readers

    if inspect.isabstract(cls):
        return None
    if issubclass(cls, MultimodalNetMixin):
        return "net"
    if (issubclass(cls, Balancer) and cls is not Balancer) or issubclass(cls, Callback):
        return "params"
    if issubclass(cls, TransformerMixin):
        return "fitted"
    if issubclass(cls, nn.Module):
        if cls in encoder_readers():
            return "module"
        if any(
            all(callable(getattr(cls, n, None)) for n in names)
            for names in _NETWORK_METHODS
        ):
            return "class"
    return None


def _class_defaults(cls: type) -> list[type]:
    """The class-valued defaults of ``cls``'s constructor parameters."""
    return [
        p.default
        for p in inspect.signature(cls).parameters.values()
        if p.default is not inspect.Parameter.empty and isinstance(p.default, type)
    ]


def _module_of(name: str) -> tuple[str, ...]:
    return (name.rsplit(".", 1)[0],)


@functools.cache
def allowed() -> dict[str, Entry]:
    """The allow-list: canonical name -> (modules where the class may live, role)."""
    from mmexplain.discovery import public_classes

    public = public_classes()
    names = {cls: name for name, cls in public.items()}
    table: dict[str, Entry] = {}
    for name, cls in public.items():
        role = role_of(cls)
        if role is not None and name not in REFUSED:
            table[name] = (_module_of(name), role)
    for name, (_, role) in list(table.items()):
        if role != "net":
            continue
        for default in _class_defaults(public[name]):
            dep = names.get(default)
            if dep is not None and dep not in table and dep not in REFUSED:
                table[dep] = (_module_of(dep), "class")
    table.update(THIRD_PARTY)
    return dict(sorted(table.items()))


#: what each allowed class is, in the order the tests of :func:`kind_of` try them:
#: (kind, role, the base classes that make it one)
_KINDS: tuple[tuple[str, str, str], ...] = (
    ("estimator", "net", "mmexplain.estimators.base.MultimodalNetMixin"),
    ("pipeline", "params", "sklearn.pipeline.Pipeline"),
    ("target_regressor", "fitted", "sklearn.compose.TransformedTargetRegressor"),
    ("balancer", "params", "mmexplain.balancers.Balancer"),
    ("callback", "params", "skorch.callbacks.Callback"),
    ("splitter", "params", "skorch.dataset.ValidSplit"),
    ("encoder", "module", "torch.nn.Module"),
    ("loss", "class", "torch.nn.modules.loss._Loss"),
    ("network", "class", "torch.nn.Module"),
    ("optimizer", "class", "torch.optim.Optimizer"),
    ("iterator", "class", "mmexplain.data.TensorBatchIterator"),
    ("iterator", "class", "torch.utils.data.DataLoader"),
    ("dataset", "class", "torch.utils.data.Dataset"),
)


def _import(path: str) -> type:
    module, attr = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), attr)


@functools.cache
def kind_of(name: str) -> str | None:
    """What the allow-listed class ``name`` is, which fixes where a file may use it.

    ``'estimator'`` (a skorch net), ``'pipeline'``, ``'target_regressor'``
    (scikit-learn's ``TransformedTargetRegressor`` around an estimator or a
    pipeline), ``'transformer'`` (mmexplain's
    ``ModalityTransformer``/``ModalitySplitter``), ``'scaler'`` (a
    scikit-learn scaler inside one, or a target regressor's ``transformer``), ``'balancer'``, ``'callback'``,
    ``'splitter'`` (``ValidSplit``), ``'encoder'`` (an encoder instance of
    ``module__encoders``), and the classes a net takes as parameters:
    ``'network'`` (``module=``), ``'loss'`` (``criterion=``), ``'optimizer'``,
    ``'iterator'`` (``iterator_train=``/``iterator_valid=``), ``'dataset'``.
    None for a name that is not allowed (or fits no kind: then no file may
    use it).

    Examples
    --------
    >>> from mmexplain.persistence.allowlist import kind_of
    >>> kind_of("mmexplain.MMTMNet"), kind_of("torch.nn.CrossEntropyLoss")
    ('network', 'loss')
    >>> kind_of("sklearn.preprocessing.StandardScaler"), kind_of("os.system")
    ('scaler', None)
    >>> kind_of("sklearn.compose.TransformedTargetRegressor")
    'target_regressor'
    """
    entry = allowed().get(name)
    cls = None if entry is None else resolve(name)
    if entry is None or cls is None:
        return None
    role = entry[1]
    for kind, kind_role, base in _KINDS:
        if role == kind_role and issubclass(cls, _import(base)):
            return kind
    if role == "fitted":
        return "transformer" if name.startswith("mmexplain.") else "scaler"
    return None


def resolve(name: str) -> type | None:
    """The allow-listed class called ``name`` (None when it cannot be imported)."""
    modules, _ = allowed()[name]
    attr = name.rsplit(".", 1)[1]
    for module_name in modules:
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue
        if isinstance(obj, type):
            return obj
    return None


@functools.cache
def _by_class() -> dict[type, str]:
    out: dict[type, str] = {}
    for name in allowed():
        cls = resolve(name)
        if cls is not None:
            out.setdefault(cls, name)
    return out


def allowed_name(cls: type) -> str | None:
    """Canonical allow-list name of ``cls`` (the exact class, not its subclasses)."""
    return _by_class().get(cls)


@functools.cache
def _aliases() -> dict[str, str]:
    from mmexplain.discovery import PUBLIC_MODULES

    by_class = _by_class()
    out: dict[str, str] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for attr in getattr(module, "__all__", ()):
            obj: Any = getattr(module, attr, None)
            if isinstance(obj, type) and obj in by_class:
                out[f"{module_name}.{attr}"] = by_class[obj]
    return out


def canonical_name(name: str) -> str:
    """``name`` itself, or the canonical name of the class at that public path.

    A file written when a class was exported under another public path
    (``mmexplain.estimators.MultimodalClassifier``) still loads.

    Examples
    --------
    >>> from mmexplain.persistence.allowlist import canonical_name
    >>> canonical_name("mmexplain.estimators.MultimodalClassifier")
    'mmexplain.MultimodalClassifier'
    """
    if name in allowed():
        return name
    return _aliases().get(name, name)


def kind_of_class(cls: Any) -> str | None:
    """:func:`kind_of` the allow-listed class ``cls`` (None when it is not allowed)."""
    if not isinstance(cls, type):
        return None
    name = allowed_name(cls)
    return None if name is None else kind_of(name)
