"""Shapley interaction index of modality pairs, from the coalition values.

Grabisch & Roubens (1999) define the Shapley interaction index of players
``i != j`` as

    I_ij = sum over S subset of N minus {i, j} of
           |S|! (M - |S| - 2)! / (M - 1)!
           * (v(S + {i, j}) - v(S + {i}) - v(S + {j}) + v(S)),

the expected synergy of the pair over the coalitions it can join. It is
linear in the coalition values, so every pair's index for every sample is one
product with a fixed (2^M, M * M) matrix: exact Shapley values already
evaluate all 2^M coalitions, so the interactions cost no model call. A pure
interaction (an XOR of two modalities) has ``I_ij`` equal to the pair's whole
effect and no main effects; an additive value function has ``I_ij = 0``.
"""

from __future__ import annotations

from math import factorial

import numpy as np

__all__ = ["interaction_weights"]


def interaction_weights(n_players: int) -> np.ndarray:
    """Matrix ``W`` (2^M, M, M) with ``I = einsum('ns,sij->nij', V, W)``.

    ``V`` (N, 2^M) holds the coalition values, coalition ``S`` encoded by the
    bitmask ``sum(1 << m for m in S)``. ``I[n, i, j]`` is the Shapley
    interaction index of modalities ``i`` and ``j`` on sample ``n`` (0 on the
    diagonal).

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.explainers._interactions import interaction_weights
    >>> V = np.array([[0.0, 0.0, 0.0, 1.0]])  # XOR-like: only both together pay
    >>> np.einsum("ns,sij->nij", V, interaction_weights(2))[0].tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    M = int(n_players)
    W = np.zeros((1 << M, M, M))
    if M < 2:
        return W
    weight = [
        factorial(s) * factorial(M - s - 2) / factorial(M - 1) for s in range(M - 1)
    ]
    masks = np.arange(1 << M)
    sizes = np.array([bin(int(s)).count("1") for s in masks])
    for i in range(M):
        for j in range(i + 1, M):
            bi, bj = 1 << i, 1 << j
            base = masks[(masks & (bi | bj)) == 0]  # coalitions without i and j
            w = np.array([weight[s] for s in sizes[base]])
            for mask, sign in (
                (base | bi | bj, 1.0),
                (base | bi, -1.0),
                (base | bj, -1.0),
                (base, 1.0),
            ):
                np.add.at(W[:, i, j], mask, sign * w)
            W[:, j, i] = W[:, i, j]
    return W
