import numpy as np
import pytest
import torch
from torch import nn

# tiny models: one thread is fastest and immune to a busy machine
torch.set_num_threads(1)


class TwoTower(nn.Module):
    """Tiny late-fusion module written in the tests (independent of mmexplain.modules)."""

    def __init__(self, n_classes=2, d_a=5, d_b=3, hidden=8):
        super().__init__()
        self.a = nn.Linear(d_a, hidden)
        self.b = nn.Linear(d_b, hidden)
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, a, b):
        return self.head(
            torch.cat([torch.relu(self.a(a)), torch.relu(self.b(b))], dim=1)
        )


@pytest.fixture
def two_modal():
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=(120, 5)), "b": rng.normal(size=(120, 3))}
    y = (X["a"][:, 0] + X["b"][:, 0] > 0).astype(int)
    return X, y


@pytest.fixture
def two_tower():
    return TwoTower
