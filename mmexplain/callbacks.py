"""skorch callbacks for multimodal training."""

from __future__ import annotations

from typing import Any

from skorch.callbacks import Callback

__all__ = ["EpochProgressBar"]


class EpochProgressBar(Callback):
    """A tqdm bar over epochs showing the latest losses (lighter than skorch's per-batch bar).

    Parameters
    ----------
    desc : str, default='training'
    keys : tuple of str, default=('train_loss', 'valid_loss', 'valid_acc')
        History entries shown when present.
    """

    def __init__(
        self,
        desc: str = "training",
        keys: tuple[str, ...] = ("train_loss", "valid_loss", "valid_acc"),
    ) -> None:
        self.desc = desc
        self.keys = keys

    def on_train_begin(
        self, net: Any, X: Any = None, y: Any = None, **kwargs: Any
    ) -> None:
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=net.max_epochs, desc=self.desc, leave=True)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        last = net.history[-1]
        self.bar_.set_postfix({k: f"{last[k]:.4f}" for k in self.keys if k in last})
        self.bar_.update(1)

    def on_train_end(
        self, net: Any, X: Any = None, y: Any = None, **kwargs: Any
    ) -> None:
        bar = getattr(self, "bar_", None)
        if bar is not None:
            bar.close()
            del self.bar_

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("bar_", None)
        return state
