"""Checking a requested torch device up front, with an error that says what to do."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_device"]


def check_device(device: Any, *, who: str | None = None) -> torch.device | None:
    """The ``torch.device`` for ``device``, refusing devices this machine lacks.

    Without the check, ``device='cuda'`` on a machine without a GPU fails
    deep inside torch (``AssertionError: Torch not compiled with CUDA
    enabled``) after the model was built; here it fails first, naming the
    parameter.

    Parameters
    ----------
    device : str, torch.device or None
        None means "leave where it is" and is returned as None.
    who : str or None, default=None
        Whose parameter it is, for the message (e.g. ``"MultimodalClassifier"``).

    Returns
    -------
    torch.device or None

    Raises
    ------
    ValueError
        The string is not a device, or the device (CUDA, a CUDA index, MPS) is
        not available.

    Examples
    --------
    >>> from mmexplain._device import check_device
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: device='gpu' is not a torch device ...
    """
    if device is None:
        return None
    at = f"{who}: " if who else ""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{at}device={device!r} is not a torch device ({exc}); use 'cpu', 'cuda', "
            "'cuda:0', ..."
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = (
                f"a CUDA {torch.version.cuda} build"
                if torch.version.cuda
                else "a CPU-only build of torch"
            )
            raise ValueError(
                f"{at}device={device!r} but no CUDA GPU is available here "
                f"(torch.cuda.is_available() is False; torch {torch.__version__} is "
                f"{build}); use device='cpu'"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"{at}device={device!r} but this machine has {count} CUDA device(s) "
                f"(indices 0..{count - 1})"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"{at}device={device!r} but the MPS backend is not available here; "
                "use device='cpu'"
            )
    return dev
