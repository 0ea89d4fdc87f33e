"""Seeding: one seed drawn from ``random_state``, independent named streams from it.

scikit-learn's convention (``permutation_importance``) is to draw one integer
seed from ``random_state`` and derive what needs randomness from it. mmexplain
does the same, and derives each consumer's randomness from a *named stream*:
``stream_seed(seed, "shuffle", epoch)`` is a NumPy ``SeedSequence`` keyed by
the stream's name (and optional counters), so streams never overlap, adding a
stream never shifts another, and no magic offsets are needed.

Streams used by the package:

==========================  ================================================
stream                      consumer
==========================  ================================================
``"init"``                  module weight initialization
``"fit", k``                torch's RNG during the ``k``-th training run
                            (dropout, ...), counted by epochs trained so far
``"shuffle", epoch``        mini-batch order of epoch ``epoch``
``"split"``                 the internal validation split
``"balancer.<Name>"``       a balancer's own draws (modality dropout masks,
                            OGM-GE noise, greedy random steps, ...)
==========================  ================================================
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = [
    "MAX_SEED",
    "draw_seed",
    "numpy_rng",
    "seeded_numpy_global",
    "seeded_torch",
    "stream_seed",
    "torch_generator",
]

#: seeds are drawn in [0, MAX_SEED) (what ``RandomState.randint`` and torch accept)
MAX_SEED = 2**31 - 1


def draw_seed(random_state: Any) -> int | None:
    """One integer seed from ``random_state`` (None stays None: fresh entropy later).

    An int, a ``RandomState`` or None, as in scikit-learn. A ``RandomState``
    instance is advanced by one draw.

    Parameters
    ----------
    random_state : int, numpy.random.RandomState or None

    Returns
    -------
    int in [0, MAX_SEED) or None

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.seeding import draw_seed
    >>> draw_seed(0) == draw_seed(0)
    True
    >>> draw_seed(None) is None
    True
    >>> rs = np.random.RandomState(0)
    >>> draw_seed(rs) == draw_seed(rs)  # the instance advances
    False
    """
    if random_state is None:
        return None
    return int(check_random_state(random_state).randint(MAX_SEED))


def _stream_key(stream: str) -> int:
    return zlib.crc32(stream.encode("utf-8"))


def stream_seed(seed: int | None, stream: str, *counters: int) -> int:
    """Seed of the named ``stream`` (with optional integer ``counters``) under ``seed``.

    ``seed=None`` returns a seed from fresh OS entropy (not reproducible).

    Parameters
    ----------
    seed : int or None
        The run's seed (:func:`draw_seed`).
    stream : str
        The consumer's name (see the table in :mod:`mmexplain.seeding`).
    *counters : int
        E.g. the epoch: each value gives an independent stream.

    Returns
    -------
    int in [0, MAX_SEED)

    Examples
    --------
    >>> from mmexplain.seeding import stream_seed
    >>> stream_seed(0, "shuffle", 1) == stream_seed(0, "shuffle", 1)
    True
    >>> stream_seed(0, "shuffle", 1) != stream_seed(0, "shuffle", 2)
    True
    """
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0]) % MAX_SEED
    key = (_stream_key(stream), *(int(c) for c in counters))
    seq = np.random.SeedSequence(entropy=int(seed), spawn_key=key)
    return int(seq.generate_state(1)[0]) % MAX_SEED


def torch_generator(
    seed: int | None,
    stream: str,
    *counters: int,
    device: str | torch.device = "cpu",
) -> torch.Generator:
    """A local ``torch.Generator`` on ``device`` seeded by :func:`stream_seed`.

    Parameters
    ----------
    seed, stream, *counters :
        As in :func:`stream_seed`.
    device : str or torch.device, default='cpu'
        Where the generator draws (a CUDA generator draws another stream
        than a CPU one for the same seed).

    Returns
    -------
    torch.Generator

    Examples
    --------
    >>> import torch
    >>> from mmexplain.seeding import torch_generator
    >>> a = torch.rand(3, generator=torch_generator(0, "shuffle", 1))
    >>> b = torch.rand(3, generator=torch_generator(0, "shuffle", 1))
    >>> torch.equal(a, b)
    True
    """
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(stream_seed(seed, stream, *counters))
    return gen


def numpy_rng(seed: int | None, stream: str, *counters: int) -> np.random.RandomState:
    """A local ``RandomState`` seeded by :func:`stream_seed`.

    Parameters
    ----------
    seed, stream, *counters :
        As in :func:`stream_seed`.

    Returns
    -------
    numpy.random.RandomState

    Examples
    --------
    >>> from mmexplain.seeding import numpy_rng
    >>> numpy_rng(0, "split").rand() == numpy_rng(0, "split").rand()
    True
    >>> numpy_rng(0, "split").rand() == numpy_rng(0, "init").rand()
    False
    """
    return np.random.RandomState(stream_seed(seed, stream, *counters))


@contextmanager
def seeded_torch(
    seed: int | None, stream: str, *counters: int, device: Any = None
) -> Iterator[None]:
    """Seed torch's global RNG inside the block; restore the caller's state after.

    With ``seed=None`` nothing is seeded (torch's global RNG is used as is).

    Parameters
    ----------
    seed, stream, *counters :
        As in :func:`stream_seed`.
    device : str, torch.device or None, default=None
        A CUDA device has its RNG forked and seeded too.

    Examples
    --------
    >>> import torch
    >>> from mmexplain.seeding import seeded_torch
    >>> with seeded_torch(0, "fit", 0):
    ...     a = torch.rand(3)
    >>> with seeded_torch(0, "fit", 0):
    ...     b = torch.rand(3)
    >>> torch.equal(a, b)
    True
    """
    if seed is None:
        yield
        return
    dev = torch.device(device) if device is not None else torch.device("cpu")
    devices = []
    if dev.type == "cuda" and torch.cuda.is_available():
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(stream_seed(seed, stream, *counters))
        yield


@contextmanager
def seeded_numpy_global(
    seed: int | None, stream: str, *counters: int
) -> Iterator[None]:
    """Seed NumPy's *global* RNG inside the block and restore its state after.

    For third-party code that draws from ``np.random`` without a
    ``random_state`` of its own (e.g. skorch's ``ValidSplit``). With
    ``seed=None`` nothing is seeded.

    Parameters
    ----------
    seed, stream, *counters :
        As in :func:`stream_seed`.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.seeding import seeded_numpy_global
    >>> before = np.random.get_state()[1].copy()
    >>> with seeded_numpy_global(0, "split"):
    ...     a = np.random.rand()
    >>> with seeded_numpy_global(0, "split"):
    ...     b = np.random.rand()
    >>> a == b
    True
    >>> bool((np.random.get_state()[1] == before).all())  # the state is restored
    True
    """
    if seed is None:
        yield
        return
    state = np.random.get_state()  # noqa: NPY002 - the global RNG is the point
    np.random.seed(stream_seed(seed, stream, *counters))  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002
