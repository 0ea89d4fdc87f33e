"""Training-time modality balancers (see :mod:`mmexplain.balancers.base` for the protocol)."""

from mmexplain.balancers.attribution import AttributionRegularizer
from mmexplain.balancers.base import Balancer, EpochData, check_target
from mmexplain.balancers.dropout import ModalityDropout
from mmexplain.balancers.greedy import GreedyBalancer
from mmexplain.balancers.ogm import OGMGE
from mmexplain.balancers.speed import ConditionalSpeedMeter
from mmexplain.balancers.target import UtilizationTarget
from mmexplain.balancers.valuation import SampleValuation

__all__ = [
    "AttributionRegularizer",
    "Balancer",
    "ConditionalSpeedMeter",
    "EpochData",
    "GreedyBalancer",
    "ModalityDropout",
    "OGMGE",
    "SampleValuation",
    "UtilizationTarget",
    "check_target",
]
