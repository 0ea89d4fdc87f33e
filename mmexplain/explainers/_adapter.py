"""What the explainers need to know about a model, whatever its kind."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.multiclass import type_of_target
from torch import nn

from mmexplain._core.torch_state import check_device
from mmexplain.data import (
    ModalityDict,
    check_class_labels,
    check_X,
    check_X_fitted,
    check_y,
    encode_labels,
)
from mmexplain.data.validation import check_masks, check_regression_targets
from mmexplain.modules.contract import (
    has_encode_fuse,
    is_branched,
    module_device,
    module_modalities,
    unwrap_parallel,
)

__all__ = ["ForwardModel", "ModelAdapter", "unwrap_model"]

# ----------------------------------------------------------------------------
# any callable as a model
# ----------------------------------------------------------------------------
_INPUT_FORMATS = ("kwargs", "dict", "tuple", "args")
_ARRAY_TYPES = ("torch", "numpy")


class ForwardModel(nn.Module):
    """Any callable as a model the explainers can run, like captum's ``forward_func``.

    Wraps a function of a batch of inputs (a model of another framework, a
    model behind a wrapper, a module whose ``forward`` takes a dict or a
    tuple) into an ``nn.Module`` called as ``model(**X)``, the mmexplain model
    contract. Explainers evaluate it with full forward passes on perturbed
    inputs, so their numbers are exact: the same as for the module it wraps.
    A plain callable passed to ``explain`` is wrapped as
    ``ForwardModel(func)`` (``input_format='kwargs'``).

    Parameters
    ----------
    forward_func : callable
        Maps one batch to logits, shape ``(n, n_classes)`` (per pixel:
        ``(n, n_classes, H, W)``). Log-probabilities work as logits (their
        softmax is the probabilities). It may return a tensor, a NumPy array
        or array-like, a tuple or list whose first element is the logits, or
        an object with a ``logits`` attribute (Hugging Face model outputs).
        When it is an ``nn.Module`` or a bound method of one, that module is
        registered as a submodule, so explaining puts it in eval mode (and
        restores its mode) and its device is known; modules a plain function
        merely captures (``lambda **X: net(**X)``) are left as they are, so put
        them in eval mode yourself or pass ``net.forward``.
    input_format : {'kwargs', 'dict', 'tuple', 'args'}, default='kwargs'
        How a batch ``X`` is passed: ``f(**X)``, ``f(X)`` (one dict),
        ``f((x_1, ..., x_M))`` (one tuple) or ``f(x_1, ..., x_M)``
        (positional, captum's convention), the tensors in ``modalities``
        order.
    modalities : sequence of str or None, default=None
        The modality names (required for 'tuple' and 'args', whose order they
        give). When given, ``X`` must hold exactly these modalities.
    device : str, torch.device or None, default=None
        Where batches are sent. None: the device of the wrapped module's
        parameters, or the CPU for a plain function.
    array_type : {'torch', 'numpy'}, default='torch'
        'numpy' passes float32 NumPy arrays (on the CPU) instead of tensors,
        for functions of other frameworks; such a model has no gradients, so
        :class:`GradientModalityAttribution` cannot explain it.
    classes : array-like or None, default=None
        Class labels of the outputs, in output order; ``y`` may then hold
        these labels rather than class indices.
    task : {'classification', 'regression'}, default='classification'
        'regression': the outputs are predictions of real targets, shape
        ``(n,)`` or ``(n, n_targets)``, and ``y`` holds real targets (the
        explainers then score them with regression scorings, e.g. the mean
        squared error).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from mmexplain.explainers import ForwardModel, PermutationModalityImportance
    >>> w = {"a": torch.tensor([[2.0, -2.0]]), "b": torch.tensor([[0.5, -0.5]])}
    >>> def f(x):  # a model taking one dict, e.g. from another library
    ...     return x["a"] @ w["a"] + x["b"] @ w["b"]
    >>> rng = np.random.default_rng(0)
    >>> X = {"a": rng.normal(size=(200, 1)), "b": rng.normal(size=(200, 1))}
    >>> y = (X["a"][:, 0] < 0).astype(int)
    >>> model = ForwardModel(f, input_format="dict", modalities=["a", "b"])
    >>> expl = PermutationModalityImportance(random_state=0).explain(model, X, y)
    >>> bool(expl.shares_by_modality["a"] > 80)
    True
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        input_format: str = "kwargs",
        *,
        modalities: Sequence[str] | None = None,
        device: Any = None,
        array_type: str = "torch",
        classes: Any = None,
        task: str = "classification",
    ) -> None:
        super().__init__()
        if not callable(forward_func):
            raise TypeError(
                f"forward_func must be callable, got {type(forward_func).__name__}"
            )
        if input_format not in _INPUT_FORMATS:
            raise ValueError(
                f"input_format must be one of {list(_INPUT_FORMATS)}, got {input_format!r}"
            )
        if array_type not in _ARRAY_TYPES:
            raise ValueError(
                f"array_type must be one of {list(_ARRAY_TYPES)}, got {array_type!r}"
            )
        if task not in ("classification", "regression"):
            raise ValueError(
                f"task must be 'classification' or 'regression', got {task!r}"
            )
        if task == "regression" and classes is not None:
            raise ValueError("classes= is for classification; a regression has none")
        if isinstance(modalities, str):
            raise TypeError("modalities must be a sequence of names, not one string")
        if modalities is None and input_format in ("tuple", "args"):
            raise ValueError(
                f"input_format={input_format!r} passes the modalities by position, so "
                "ForwardModel needs modalities=[...] (their order)"
            )
        self.forward_func = forward_func  # registered as a submodule if a Module
        owner = getattr(forward_func, "__self__", None)
        if isinstance(owner, nn.Module) and not isinstance(forward_func, nn.Module):
            self.wrapped = owner  # a bound method: its module is a submodule
        self.input_format = input_format
        self.modalities = None if modalities is None else tuple(modalities)
        self.array_type = array_type
        self.classes = None if classes is None else np.asarray(classes)
        self.task = task
        self._device = check_device(device, who="ForwardModel")

    @property
    def input_device(self) -> torch.device:
        """Where batches go: ``device``, else the wrapped module's, else the CPU."""
        return self._device if self._device is not None else module_device(self)

    def on_device(self, device: Any) -> ForwardModel:
        """This model with batches sent to ``device`` (a copy when it has parameters)."""
        dev = check_device(device)
        if any(True for _ in self.parameters()) or any(True for _ in self.buffers()):
            out = copy.deepcopy(self).to(dev)
        else:
            out = copy.copy(self)
        out._device = dev
        return out

    def forward(self, **X: torch.Tensor) -> torch.Tensor:
        """Call ``forward_func`` on ``X`` in ``input_format``; return the logits."""
        names = self.modalities if self.modalities is not None else tuple(X)
        n = int(next(iter(X.values())).shape[0]) if X else 0
        inputs: dict[str, Any] = dict(X)
        if self.array_type == "numpy":
            if torch.is_grad_enabled() and any(
                isinstance(v, torch.Tensor) and v.requires_grad for v in X.values()
            ):
                raise TypeError(
                    "this ForwardModel has array_type='numpy', so it has no gradients; "
                    "gradient attribution needs a torch model (array_type='torch')"
                )
            inputs = {m: v.detach().cpu().numpy() for m, v in X.items()}
        f = self.forward_func
        if self.input_format == "kwargs":
            out = f(**inputs)
        elif self.input_format == "dict":
            out = f(inputs)
        elif self.input_format == "tuple":
            out = f(tuple(inputs[m] for m in names))
        else:
            out = f(*(inputs[m] for m in names))
        return self._logits(out, n)

    def _logits(self, out: Any, n: int) -> torch.Tensor:
        if isinstance(out, tuple | list):
            out = out[0]
        elif not isinstance(out, torch.Tensor) and hasattr(out, "logits"):
            out = out.logits
        if not isinstance(out, torch.Tensor):
            try:
                out = torch.as_tensor(np.asarray(out, dtype=np.float32))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    "forward_func must return logits (a tensor or an array), got "
                    f"{type(out).__name__}"
                ) from exc
            out = out.to(self.input_device)
        if self.task == "regression" and out.dim() == 1 and int(out.shape[0]) == n:
            out = out.unsqueeze(1)  # one prediction per sample
        if out.dim() < 2 or int(out.shape[0]) != n:
            raise ValueError(
                f"forward_func returned an output of shape {tuple(out.shape)} for {n} "
                "samples; the explainers need logits of shape (n, n_classes) (or "
                "(n, n_classes, H, W)); for one log-odds z per sample return "
                "torch.stack([torch.zeros_like(z), z], dim=1)"
            )
        return out

    def extra_repr(self) -> str:
        name = getattr(
            self.forward_func, "__qualname__", type(self.forward_func).__name__
        )
        return (
            f"forward_func={name}, input_format={self.input_format!r}, "
            f"modalities={self.modalities}, array_type={self.array_type!r}"
            + (", task='regression'" if self.task == "regression" else "")
        )


# ----------------------------------------------------------------------------
# pipelines and fitted searches
# ----------------------------------------------------------------------------
def _is_search(model: Any) -> bool:
    from sklearn.model_selection._search import BaseSearchCV

    return isinstance(model, BaseSearchCV)


def unwrap_model(model: Any, X: Any) -> tuple[Any, Any, tuple[str, ...]]:
    """The model the explainers run and the inputs it receives.

    A fitted search (``GridSearchCV``, ``RandomizedSearchCV``, any
    ``BaseSearchCV``) stands for its ``best_estimator_``; a fitted
    ``Pipeline`` for its last step, with ``X`` passed through the other
    steps' ``transform`` once, up front. That is exact for the explainers'
    perturbations when every step transforms each modality separately and
    each row separately (e.g. a
    :class:`~mmexplain.preprocessing.ModalityTransformer` of scalers): a
    transform of a permuted modality is then the permuted transform, and the
    modalities the model sees are the pipeline's input modalities (minus any
    a step drops).

    Parameters
    ----------
    model : any
    X : mapping of str to array-like, or a Dataset
        The pipeline's inputs.

    Returns
    -------
    model : the innermost model
    X : its inputs
    path : tuple of str
        What was unwrapped, outermost first (e.g. ``('GridSearchCV',
        'Pipeline')``); empty when nothing was.

    Raises
    ------
    NotFittedError
        The search or pipeline is not fitted.
    ValueError
        A search fitted with ``refit=False``; a pipeline whose last step is
        ``'passthrough'``.
    TypeError
        A pipeline step does not return a mapping ``{modality: array}``, or
        ``X`` is a Dataset (pipelines transform in-memory data).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mmexplain import ModalityTransformer, MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.explainers import unwrap_model
    >>> X, y = make_multimodal_classification(n_samples=60, random_state=0)
    >>> pipe = make_pipeline(
    ...     ModalityTransformer({m: StandardScaler() for m in X}),
    ...     MultimodalClassifier(max_epochs=1, random_state=0),
    ... ).fit(X, y)
    >>> final, Xt, path = unwrap_model(pipe, X)
    >>> type(final).__name__, path, list(Xt) == list(X)
    ('MultimodalClassifier', ('Pipeline',), True)
    """
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline

    path: list[str] = []
    while True:
        if _is_search(model):
            name = type(model).__name__
            if not hasattr(model, "best_estimator_"):
                if not hasattr(model, "cv_results_"):
                    raise NotFittedError(
                        f"This {name} instance is not fitted yet: call fit(X, y) "
                        "before explaining it"
                    )
                raise ValueError(
                    f"the {name} was fitted with refit=False, so it has no "
                    "best_estimator_ to explain; fit it with refit=True (or "
                    "refit='<metric>'), or explain a fitted estimator"
                )
            path.append(name)
            model = model.best_estimator_
        elif isinstance(model, Pipeline):
            final = model.steps[-1][1]
            if final is None or final == "passthrough":
                raise ValueError(
                    "the Pipeline's last step is 'passthrough'; the explainers need "
                    "a model as the last step"
                )
            if len(model.steps) > 1:
                if not isinstance(X, Mapping):
                    raise TypeError(
                        "explaining a Pipeline transforms X with its first steps, which "
                        f"needs X as a mapping of arrays, got {type(X).__name__}; "
                        "transform the data yourself and explain pipe[-1]"
                    )
                Xt = model[:-1].transform(X)
                if not isinstance(Xt, Mapping):
                    raise TypeError(
                        "the explainers need every Pipeline step before the model to "
                        "return a mapping {modality: array} (e.g. a "
                        f"ModalityTransformer); the steps {[n for n, _ in model.steps[:-1]]} "
                        f"returned {type(Xt).__name__}"
                    )
                X = Xt
            path.append(type(model).__name__)
            model = final
        else:
            return model, X, tuple(path)


# ----------------------------------------------------------------------------
# model adapter
# ----------------------------------------------------------------------------
class ModelAdapter:
    """What the explainers need to know about a model, whatever its kind.

    ``model`` may be a fitted :class:`~mmexplain.MultimodalClassifier` /
    :class:`~mmexplain.MultimodalSegmenter`, any fitted skorch net, an
    ``nn.Module`` called as ``module(**X)``, a :class:`ForwardModel`, or any
    other callable ``f(**X) -> logits`` (wrapped as ``ForwardModel(f)``).
    Pipelines and fitted searches are unwrapped before (:func:`unwrap_model`).
    """

    def __init__(
        self,
        model: Any,
        *,
        loss_fn: Any = None,
        device: Any = None,
        who: str | None = None,
    ) -> None:
        from sklearn.exceptions import NotFittedError

        self.net = None
        requested = check_device(device, who=who)
        if isinstance(model, nn.Module):
            module = unwrap_parallel(model)  # DDP / DataParallel: the module inside
        elif hasattr(model, "module") and hasattr(model, "initialize"):  # skorch net
            if not getattr(model, "initialized_", False) or not hasattr(
                model, "module_"
            ):
                raise NotFittedError(
                    f"This {type(model).__name__} instance is not fitted yet: call "
                    "fit(X, y) before explaining it"
                )
            self.net = model
            module = model.module_
        elif callable(model) and not hasattr(model, "fit"):
            module = ForwardModel(model)  # captum-style forward_func(**X) -> logits
        else:
            hint = (
                "; for a scikit-learn model wrap its log-probabilities, e.g. "
                "ForwardModel(lambda **X: clf.predict_log_proba(np.hstack([X[m] for m "
                "in modalities])), array_type='numpy')"
                if hasattr(model, "fit")
                else ""
            )
            raise TypeError(
                "model must be a fitted MultimodalClassifier/MultimodalSegmenter, a fitted "
                "skorch net, a torch nn.Module, a callable f(**X) -> logits "
                "(mmexplain.explainers.ForwardModel), or a fitted Pipeline or search "
                f"ending in one of those; got {type(model).__name__}" + hint
            )
        if isinstance(module, ForwardModel):
            own = module.input_device
            if requested is not None and requested != own:
                module = module.on_device(requested)
                own = requested
        else:
            own = module_device(module)
            if requested is not None and requested != own:
                # never move the caller's model: work on a copy on the requested device
                module = copy.deepcopy(module).to(requested)
                own = requested
        self.module = module
        self.device = own
        self.split = has_encode_fuse(module)
        self.is_mmtm = is_branched(module)
        net_mods = getattr(self.net, "modalities_", None)
        self.modalities: tuple[str, ...] | None = (
            tuple(net_mods) if net_mods is not None else module_modalities(module)
        )
        self.input_shapes = getattr(self.net, "input_shapes_", None)
        criterion = (
            loss_fn if loss_fn is not None else getattr(self.net, "criterion_", None)
        )
        self.criterion = criterion
        ignore = getattr(self.net, "ignore_index", None)
        if ignore is None:
            ignore = getattr(criterion, "ignore_index", None)
        self.ignore_index: int | None = ignore
        self.classes = (
            getattr(self.net, "classes_", None) if self.net is not None else None
        )
        if self.net is not None and not hasattr(self.net, "classes_"):
            self.classes = None
        if isinstance(module, ForwardModel) and module.classes is not None:
            self.classes = module.classes
        #: a fitted MultimodalSegmenter: y must be masks of the input images' size
        self.segmentation = getattr(self.net, "_task", None) == "segmentation"
        #: a regression model: real targets (N, T), outputs (N, T) are predictions
        self.regression = _is_regression(self.net, module, criterion)
        #: per-target mean of y (regression): sums of squares are taken around it
        self.y_center: np.ndarray | None = None
        #: per-position size of y (masks: (H, W)), checked against the outputs
        self.target_size: tuple[int, ...] | None = None

    # -- inputs -----------------------------------------------------------
    def check_X(self, X: Any) -> ModalityDict:
        """``X`` checked against the model's modalities (and fitted shapes when known)."""
        if self.input_shapes is not None:
            return check_X_fitted(X, self.input_shapes)
        return check_X(X, modalities=self.modalities)

    def encode_y(
        self, y: Any, n: int, *, spatial: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """Targets as class indices (labels mapped through ``classes_`` when known).

        Parameters
        ----------
        y : array-like
            Labels ``(N,)``, or masks ``(N, H, W)`` for a segmentation model.
        n : int
            The number of samples of ``X``.
        spatial : tuple of int, optional
            The ``(H, W)`` of the input images when they share one: the masks
            of a :class:`~mmexplain.MultimodalSegmenter` must have it. Other
            per-position targets are checked against the model's outputs on
            its first call (:meth:`forward`).

        Returns
        -------
        ndarray of int64
        """
        y = check_y(y, n)
        self.target_size = None
        if self.regression:
            y = check_regression_targets(y, n)
            self.target_size = (int(y.shape[1]),)
            self.y_center = y.astype(np.float64).mean(axis=0) if len(y) else None
            return y
        if self.segmentation:
            y = check_masks(y, spatial=spatial, what="the input images")
            self.target_size = tuple(int(d) for d in y.shape[1:])
            return y
        if self.classes is not None or y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            y = check_class_labels(
                y
            )  # (N, 1) flattened with a warning; one-hot refused
        elif y.ndim == 2 and type_of_target(y) == "multilabel-indicator":
            check_class_labels(y)  # raises: a one-hot / multilabel indicator matrix
        if self.classes is not None:
            return encode_labels(y, self.classes)
        if y.ndim == 3:  # masks of a segmentation module: integer labels per pixel
            y = check_masks(y)
        elif y.dtype.kind not in "iub":
            if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
                y = y.astype(np.int64)
            else:
                raise TypeError(
                    f"y must hold integer class indices for this model (got dtype "
                    f"{y.dtype}); pass a fitted MultimodalClassifier to use other labels"
                )
        if y.ndim >= 2:
            self.target_size = tuple(int(d) for d in y.shape[1:])
        return y.astype(np.int64, copy=False)

    def _check_outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-position targets must have the size of the per-position outputs.

        A shape comparison on every call (no device work): masks of another
        size (transposed, flattened, of another image) would otherwise fail
        deep in the loss, or pair the wrong pixels.
        """
        size = self.target_size
        if self.regression:
            if logits.dim() == 1:
                logits = logits.unsqueeze(1)  # one prediction per sample
            if logits.dim() != 2 or (
                size is not None and int(logits.shape[1]) != size[0]
            ):
                per = tuple(int(d) for d in logits.shape[1:])
                raise ValueError(
                    f"the regression model returns outputs of shape {per} per "
                    f"sample, but y has {size[0] if size else '?'} target(s) per "
                    "sample; the outputs must be (n, n_targets), one per target"
                )
            return logits
        if size is not None and tuple(logits.shape[2:]) != size:
            out = tuple(int(d) for d in logits.shape[2:])
            hint = (
                " (transposed masks? use y.transpose(0, 2, 1))"
                if len(size) == 2 and size == out[::-1]
                else ""
            )
            raise ValueError(
                f"y has per-pixel targets of size {size} but the model outputs "
                f"logits of size {out} per sample; masks must be (N, H, W) "
                f"matching the model's output{hint}"
            )
        return logits

    # -- forward pieces ------------------------------------------------------
    def encode(self, X: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.module.encode(**X)

    def head(self, Z: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self._check_outputs(self.module.fuse(**Z))

    def forward(self, X: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out = self.module(**X)
        return self._check_outputs(out[0] if isinstance(out, tuple) else out)

    # -- per-element loss -----------------------------------------------------
    def elementwise_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Unreduced loss, shape (rows,), (rows, H, W) or (rows, T) (regression)."""
        crit = self.criterion
        if self.regression and crit is None:
            return F.mse_loss(logits, y.to(logits.dtype), reduction="none")
        if (
            crit is None
            or isinstance(crit, nn.CrossEntropyLoss)
            or (isinstance(crit, type) and issubclass(crit, nn.CrossEntropyLoss))
        ):
            kw: dict[str, Any] = {}
            if isinstance(crit, nn.CrossEntropyLoss):
                kw = {"weight": crit.weight, "label_smoothing": crit.label_smoothing}
            return F.cross_entropy(
                logits,
                y,
                reduction="none",
                ignore_index=self.ignore_index
                if self.ignore_index is not None
                else -100,
                **kw,
            )
        if isinstance(crit, nn.Module) and hasattr(crit, "reduction"):
            # a loss module: ``reduction`` is a plain str attribute, which torch's
            # ``Module.__setattr__`` annotation (tensors and modules) does not cover
            unreduced: Any = copy.copy(crit)
            unreduced.reduction = "none"
            return unreduced(logits, y)
        out = crit(logits, y)
        if out.dim() == 0:
            raise ValueError(
                "loss_fn returned a scalar; the explainers need one loss per sample "
                "(pass a loss module with a `reduction` attribute or a function returning "
                "unreduced losses)"
            )
        return out


_REGRESSION_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss)


def _is_regression(net: Any, module: Any, criterion: Any) -> bool:
    """Whether the model predicts real targets (a regressor) rather than classes.

    A fitted :class:`~mmexplain.MultimodalRegressor` or any scikit-learn-style
    regressor (e.g. skorch's ``NeuralNetRegressor``); a
    ``ForwardModel(..., task='regression')``; or a plain module explained
    with a regression ``loss_fn`` (``nn.MSELoss``, ``nn.L1Loss``,
    ``nn.SmoothL1Loss``, ``nn.HuberLoss``).
    """
    if net is not None:
        if getattr(net, "_task", None) is not None:
            return net._task == "regression"
        from sklearn.base import is_regressor

        return bool(is_regressor(net))
    if isinstance(module, ForwardModel):
        return module.task == "regression"
    loss = criterion if isinstance(criterion, type) else type(criterion)
    return isinstance(loss, type) and issubclass(loss, _REGRESSION_LOSSES)
