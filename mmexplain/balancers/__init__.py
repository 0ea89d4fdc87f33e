"""Training-time modality balancers (see :mod:`mmexplain.balancers.base` for the protocol)."""

from mmexplain.balancers.base import Balancer, check_target
from mmexplain.balancers.dropout import ModalityDropout

__all__ = ["Balancer", "ModalityDropout", "check_target"]
