"""The low layer: machinery every other part of mmexplain shares.

It imports only torch, numpy, scikit-learn and tqdm, never another mmexplain
package, so anything may use it:

- :mod:`~mmexplain._core.distributed`: ``torch.distributed`` row shares,
  reductions and gathers (explaining) and gradient averaging (training);
- :mod:`~mmexplain._core.torch_state`: ``eval_mode``, per-model locks and the
  up-front device check;
- :mod:`~mmexplain._core.rows`: row blocks and the streamed, sharded row sum
  (:func:`~mmexplain._core.rows.reduce_rows`) behind every whole-set mean;
- :mod:`~mmexplain._core.progress`: progress bars, tqdm on a terminal and
  plain lines in a log.

Randomness is not here: it goes through :mod:`mmexplain.seeding` everywhere.
"""
