"""Command line: ``python -m mmexplain`` / ``mmexplain``.

With no arguments: train a late-fusion network on the bundled UCI Multiple
Features data (6 real modalities), print the test accuracy and a per-modality
report (permutation utilization, conditional utilization rates, mean Shapley
values, gradient attribution), and save a plot.

Subcommands::

    mmexplain train   [--epochs N] [--save-model model.pkl] [--plot report.png]
    mmexplain explain model.pkl data.npz [--plot report.png]

``data.npz`` holds one array per modality (named like the model's modalities)
and the targets under ``y`` (``--target-key`` to change).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["main", "modality_report"]


def modality_report(
    model: Any,
    X: Any,
    y: Any,
    *,
    n_repeats: int = 10,
    random_state: int = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run the four explainers on ``(X, y)``; returns their explanations by name."""
    from mmexplain.explainers import (
        ConditionalUtilization,
        GradientModalityAttribution,
        ModalityShapley,
        PermutationModalityImportance,
    )

    M = len(list(X.keys()))
    explainers = {
        "permutation": PermutationModalityImportance(
            n_repeats=n_repeats, random_state=random_state, show_progress=show_progress
        ),
        "conditional": ConditionalUtilization(show_progress=show_progress),
        "shapley": ModalityShapley(
            n_samples=None if M <= 10 else 100,
            random_state=random_state,
            show_progress=show_progress,
        ),
        "attribution": GradientModalityAttribution(show_progress=show_progress),
    }
    out = {}
    for name, explainer in explainers.items():
        try:
            out[name] = explainer.explain(model, X, y)
        except (
            TypeError,
            ValueError,
        ) as exc:  # e.g. an ablation the model does not support
            print(f"  ({name} skipped: {exc})", file=sys.stderr)
    return out


def _format_table(
    report: dict[str, Any], input_shapes: dict[str, tuple[int, ...]]
) -> str:
    mods = next(iter(report.values())).modalities
    header = f"{'modality':15s} {'shape':>12s} {'MU %':>7s} {'+-':>5s} {'u(m|rest)':>10s} {'Shapley':>8s} {'grad x in %':>11s}"
    lines = [header, "-" * len(header)]
    perm, cond, shap_, attr = (
        report.get(k) for k in ("permutation", "conditional", "shapley", "attribution")
    )
    err = perm.share_errors() if perm is not None else None
    for j, m in enumerate(mods):
        shape = "x".join(str(s) for s in input_shapes.get(m, ()))
        lines.append(
            f"{m:15s} {shape:>12s} "
            f"{perm.shares[j] if perm is not None else float('nan'):7.1f} "
            f"{err[j] if err is not None else float('nan'):5.1f} "
            f"{cond.rates[j] if cond is not None else float('nan'):10.3f} "
            f"{shap_.mean_values[j] if shap_ is not None else float('nan'):8.3f} "
            f"{attr.shares[j] if attr is not None else float('nan'):11.1f}"
        )
    return "\n".join(lines)


def _save_plot(report: dict[str, Any], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(report), figsize=(4.2 * len(report), 3.8), squeeze=False
    )
    for ax, (name, expl) in zip(axes[0], report.items()):
        expl.plot(ax=ax)
        ax.set_title(
            {
                "permutation": "Permutation MU",
                "conditional": "Conditional rate",
                "shapley": "Mean Shapley",
                "attribution": "Grad x input",
            }[name],
            fontsize=10,
        )
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_report(
    model: Any, X: Any, y: Any, args: argparse.Namespace, title: str
) -> None:
    report = modality_report(
        model,
        X,
        y,
        n_repeats=args.repeats,
        random_state=args.seed,
        show_progress=not args.quiet,
    )
    if not report:
        print("no explainer could run on this model", file=sys.stderr)
        return
    shapes = {m: tuple(np.asarray(v).shape[1:]) for m, v in X.items()}
    print()
    print(_format_table(report, shapes))
    print(
        "\nMU %: permutation modality utilization (share of the loss increase when the modality's rows are\n"
        f"permuted, mean of {args.repeats} repeats, +- its std); u(m|rest): relative accuracy lost when the modality is\n"
        "replaced by its mean embedding; Shapley: mean per-sample Shapley value (|S| x correct, zeroed\n"
        "embeddings); grad x in %: gradient x input attribution share at the encoder outputs."
    )
    if args.plot:
        _save_plot(report, args.plot, title)
        print(f"\nplot saved to {args.plot}")


def _cmd_train(args: argparse.Namespace) -> int:
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from mmexplain import ModalityTransformer, MultimodalClassifier
    from mmexplain.callbacks import EpochProgressBar
    from mmexplain.datasets import load_multiple_features

    X, y = load_multiple_features()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=args.seed
    )
    # standardize each modality with statistics of the training split
    scaler = ModalityTransformer({m: StandardScaler() for m in X.modalities}).fit(
        X_train
    )
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    print(
        f"UCI Multiple Features: {len(y)} handwritten digits, {len(X.modalities)} modalities "
        f"({', '.join(f'{m} {v.shape[1]}' for m, v in X.items())}); "
        f"train {len(y_train)} / test {len(y_test)}, standardized per modality"
    )
    callbacks = [] if args.quiet else [EpochProgressBar(desc="training LateFusionNet")]
    clf = MultimodalClassifier(
        max_epochs=args.epochs,
        lr=args.lr,
        batch_size=64,
        random_state=args.seed,
        callbacks=callbacks,
    )
    t0 = time.perf_counter()
    clf.fit(X_train, y_train)
    print(
        f"trained in {time.perf_counter() - t0:.1f} s; test accuracy {clf.score(X_test, y_test):.3f} "
        f"(train {clf.score(X_train, y_train):.3f})"
    )
    if args.save_model:
        with open(args.save_model, "wb") as fh:
            pickle.dump(clf, fh)
        print(f"model saved to {args.save_model}")
    _print_report(
        clf,
        X_test,
        y_test,
        args,
        "mmexplain: modality use on UCI Multiple Features (test split)",
    )
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    with open(args.model, "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - the user's own model file
    data = np.load(args.data, allow_pickle=False)
    if args.target_key not in data.files:
        print(
            f"error: {args.data} has no {args.target_key!r} array (targets); it has {data.files}",
            file=sys.stderr,
        )
        return 2
    y = data[args.target_key]
    X = {k: data[k] for k in data.files if k != args.target_key}
    from mmexplain import ModalityDict

    X = ModalityDict(X)
    if hasattr(model, "score"):
        print(f"score on {args.data}: {model.score(X, y):.3f}")
    _print_report(model, X, y, args, f"mmexplain: modality use ({args.data})")
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="mmexplain", description=__doc__.split("\n\n")[1].replace("\n", " ")
    )
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument(
        "--repeats", type=int, default=10, help="permutation repeats (default 10)"
    )
    ap.add_argument(
        "--plot",
        default="mmexplain_report.png",
        help="where to save the plot ('' for none)",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = ap.add_subparsers(dest="command")
    tr = sub.add_parser(
        "train", help="train on the bundled data and report (the default)"
    )
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--save-model", default=None, help="pickle the fitted model here")
    ex = sub.add_parser(
        "explain", help="explain a pickled model on an .npz of modalities"
    )
    ex.add_argument("model")
    ex.add_argument("data")
    ex.add_argument("--target-key", default="y")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mmexplain`` and the ``mmexplain`` command."""
    args = _parser().parse_args(argv)
    if args.command is None:
        args.command, args.epochs, args.lr, args.save_model = "train", 30, 1e-3, None
    if args.command == "train":
        return _cmd_train(args)
    return _cmd_explain(args)


if __name__ == "__main__":
    sys.exit(main())
