"""Constructor arguments of the encoder instances a model file may hold.

An encoder given as an *instance* (``module__encoders`` of
``module=LateFusionNet``) is saved as its constructor arguments and its
weights. The arguments are read back from the layers by a reader registered
here; an encoder class with a reader gets the ``'module'`` role in the
allow-list (:mod:`mmexplain.persistence.allowlist`), one without cannot be
saved as an instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _mlp_params(module: Any) -> dict[str, Any] | None:
    from torch import nn

    layers = list(module.modules())
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    drops = [m.p for m in layers if isinstance(m, nn.Dropout)]
    return {
        "in_features": int(module.in_features),
        "out_features": int(module.out_features),
        "hidden": tuple(int(m.out_features) for m in linears[:-1]),
        "dropout": float(drops[0]) if drops else 0.0,
    }


def _conv_params(module: Any) -> dict[str, Any] | None:
    from torch import nn

    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return None
    return {
        "in_channels": int(module.in_channels),
        "out_features": int(module.out_features),
        "channels": tuple(int(m.out_channels) for m in convs),
        "kernel_size": int(convs[0].kernel_size[0]),
    }


def encoder_readers() -> dict[type, Callable[[Any], dict[str, Any] | None]]:
    """``{encoder class: reader}``; a reader returns the constructor arguments.

    Examples
    --------
    >>> from mmexplain import MLPEncoder
    >>> from mmexplain.persistence._modules import encoder_init_params
    >>> encoder_init_params(MLPEncoder(4, 2, hidden=(3,)))["hidden"]
    (3,)
    """
    from mmexplain.modules import ConvEncoder, MLPEncoder

    return {MLPEncoder: _mlp_params, ConvEncoder: _conv_params}


def encoder_init_params(module: Any) -> dict[str, Any] | None:
    """Constructor arguments of an encoder instance, read from its layers.

    None when its class has no reader. The caller checks that
    ``type(module)(**params)`` has the same structure.
    """
    reader = encoder_readers().get(type(module))
    return None if reader is None else reader(module)
