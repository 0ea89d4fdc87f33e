"""Torch state helpers: eval mode with the modes restored, per-model locks, devices."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["auto_batch_size", "check_device", "eval_mode", "model_lock"]

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = (
    weakref.WeakKeyDictionary()
)
_LOCKS_GUARD = threading.Lock()


def model_lock(module: nn.Module) -> threading.RLock:
    """The lock of ``module``: explanations of one model run one at a time.

    Explaining flips the module's train/eval mode and, for MMTM models,
    ablation flags; two threads doing that on one module at once would see
    each other's modes (dropout on, buffers updated) and could leave the
    module in the wrong mode. Holding this lock makes ``explain`` safe to call
    from several threads (calls on *different* models still run in parallel).
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(module)
        if lock is None:
            lock = _LOCKS[module] = threading.RLock()
        return lock


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own mode afterwards.

    Examples
    --------
    >>> from torch import nn
    >>> from mmexplain._core.torch_state import eval_mode
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> net[1].eval()  # a submodule in its own mode
    Dropout(p=0.5, inplace=False)
    >>> with eval_mode(net):
    ...     net.training
    False
    >>> net.training, net[1].training
    (True, False)
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training


#: rows per model call on the CPU for batch_size='auto' (larger blocks do not
#: run faster there: the per-call overhead is already small next to the work)
CPU_BATCH_SIZE = 4096
#: upper bound of batch_size='auto' on an accelerator
MAX_DEVICE_BATCH = 262_144


def auto_batch_size(
    batch_size: int | str,
    device: torch.device | str,
    row_bytes: int,
    *,
    cpu_default: int = CPU_BATCH_SIZE,
    memory_fraction: float = 1 / 16,
) -> int:
    """Rows per model call: ``batch_size`` itself, or the ``'auto'`` choice for ``device``.

    On the CPU ``'auto'`` is ``cpu_default``. On a CUDA device it is the
    largest power of two of rows whose inputs, four times over (the inputs,
    their embeddings or activations, the stacked perturbations, the outputs),
    fit in ``memory_fraction`` of the memory free on the device now, at most
    262144 (and at least 1): a GPU needs large calls to be busy (measured on
    an H200: permutation utilization of 400,000 rows took 3.47 s at 4096 rows
    per call and 0.64 s at 262,144), but the memory fit always wins, so large
    images get small calls rather than an out-of-memory error.

    Examples
    --------
    >>> from mmexplain._core.torch_state import auto_batch_size
    >>> auto_batch_size("auto", "cpu", row_bytes=1024)
    4096
    >>> auto_batch_size(512, "cuda", row_bytes=1024)  # a number is kept as is
    512
    """
    if not isinstance(batch_size, str):
        return int(batch_size)
    if batch_size != "auto":
        raise ValueError(
            f"batch_size must be a positive integer or 'auto', got {batch_size!r}"
        )
    dev = torch.device(device)
    if dev.type != "cuda":
        return int(cpu_default)
    free, _ = torch.cuda.mem_get_info(dev)
    rows = int(free * memory_fraction) // max(4 * int(row_bytes), 1)
    rows = max(1, min(MAX_DEVICE_BATCH, rows))
    return 1 << (rows.bit_length() - 1)


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
    >>> from mmexplain._core.torch_state import check_device
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
