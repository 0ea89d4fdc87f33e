"""Building the estimator's network from its ``module`` parameter."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["build_estimator_module"]


def build_estimator_module(net: Any) -> torch.nn.Module:
    """The network ``net.module_`` for ``net.module`` and ``module__*`` parameters.

    - ``None``: :func:`~mmexplain.modules.build_module` from the training data
      (``net.input_shapes_``), with the ``module__`` arguments it takes;
    - an ``nn.Module`` instance: a deep copy (never trained in place), rebuilt
      with ``module__`` arguments when any are given;
    - a class or callable: called with the ``module__`` arguments, and with
      ``n_classes`` / ``in_channels`` filled in from the data when its
      signature takes them and they are not given.
    """
    kwargs = net.get_params_for("module")
    module = net.module
    if module is None:
        return _default_module(net, kwargs)
    if isinstance(module, torch.nn.Module):
        module = copy.deepcopy(module)
        return type(module)(**copy.deepcopy(kwargs)) if kwargs else module
    if inspect.isclass(module) or callable(module):
        params: Mapping[str, inspect.Parameter]
        try:
            params = inspect.signature(module).parameters
        except (TypeError, ValueError):
            params = {}
        for key, value in net._module_defaults().items():
            if key in params and key not in kwargs:
                kwargs[key] = value
    return net.initialized_instance(module, copy.deepcopy(kwargs))


def _default_module(net: Any, kwargs: dict[str, Any]) -> torch.nn.Module:
    from mmexplain.modules import build_module

    if getattr(net, "input_shapes_", None) is None:
        raise ValueError(
            "module=None builds the network from the training data, so the "
            "estimator must see data first: call fit(X, y) (max_epochs=0 "
            "builds it without training), or pass module=..."
        )
    kwargs = {"n_classes": net._module_defaults()["n_classes"], **kwargs}
    allowed = set(inspect.signature(build_module).parameters) - {"input_shapes", "task"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(
            f"module=None builds the default network, which takes module__ "
            f"arguments {sorted(allowed - {'n_classes'})}; got unknown "
            + ", ".join(f"module__{k}" for k in unknown)
            + " (pass module=... to use another network)"
        )
    return build_module(net.input_shapes_, task=net._task, **kwargs)
