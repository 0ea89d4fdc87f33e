"""Command line: ``python -m mmexplain`` / ``mmexplain``.

With no arguments: train a late-fusion network on the bundled UCI Multiple
Features data (6 real modalities), print the test accuracy and a per-modality
report (permutation utilization, conditional utilization rates, mean Shapley
values, gradient attribution), and save a plot.

Examples (each line runs as shown, in this order, in an empty directory)::

    mmexplain
    mmexplain train --epochs 3 --plot report.png --save-model model.mmx
    mmexplain export-data test.npz --split test
    mmexplain explain model.mmx test.npz --plot explain.png
    mmexplain export-data train.npz --split train --target-key label
    mmexplain train --data train.npz --target-key label --test-size 0.2 --epochs 3 --plot ''
    mmexplain --quiet --repeats 3 explain model.mmx test.npz --plot ''

``train --data`` and ``explain`` read an ``.npz`` file (``numpy.savez``)
holding one array per modality, named like the modalities, with the samples
along the first axis, and the targets under ``y`` (``--target-key`` to
change), with :func:`mmexplain.data.load_npz`; ``export-data`` writes the
bundled data set in that format with :func:`mmexplain.data.save_npz`
(``--split test``: the rows ``train`` holds out). ``train --save-model``
saves the whole pipeline (the per-modality scalers and the classifier) with
:func:`mmexplain.persistence.save_model`, a format that runs no code when it
is loaded. Pickled models load only with ``explain --trust-pickle``.

Options such as ``--seed``, ``--repeats``, ``--plot`` and ``--quiet`` go before
or after the subcommand. Exit status: 0 on success, 1 when no explainer could
run on the model, 2 when the input is unusable (bad options; missing,
truncated or mismatched files), with one ``error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmexplain._cli_args import build_parser
from mmexplain.report import format_report, modality_report, plot_report, report_legend

# modality_report lives in mmexplain.report; importable from here as before
__all__ = ["main", "modality_report"]

# default number of training epochs of ``mmexplain`` / ``mmexplain train``
_DEFAULT_EPOCHS = 30
_DEFAULT_PLOT = "mmexplain_report.png"


class _UsageError(Exception):
    """A problem with the user's input: one ``error:`` line on stderr, exit status 2."""


@contextlib.contextmanager
def _usage_errors(prefix: str = "", errors: Any = (OSError, ValueError)) -> Any:
    """The library's ``errors`` as a `_UsageError`: ``prefix`` then the message."""
    try:
        yield
    except errors as exc:
        raise _UsageError(f"{prefix}{exc}") from exc


# -- input and output ----------------------------------------------------------
def _check_output(path: str | None, what: str) -> None:
    """Fail before any work when ``path`` cannot be written."""
    parent = os.path.dirname(os.path.abspath(path or "."))
    if path and not os.path.isdir(parent):
        raise _UsageError(f"{what} {path}: the directory {parent} does not exist")
    if path and os.path.isdir(path):
        raise _UsageError(f"{what} {path} is a directory")


def _read_model(path: str, trust_pickle: bool) -> Any:
    from mmexplain.persistence import load_model

    if not os.path.exists(path):
        raise _UsageError(f"model file {path} does not exist")
    with (
        _usage_errors(errors=ValueError),
        _usage_errors(f"cannot read model file {path}: ", OSError),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("always")  # the pickle warning, at every load
        model = load_model(path, trust_pickle=trust_pickle)
    if not (hasattr(model, "predict") and hasattr(model, "score")):
        raise _UsageError(
            f"{path} holds a {type(model).__name__} object, not a fitted model"
        )
    return model


def _split(X: Any, y: np.ndarray, test_size: float, seed: int) -> list[Any]:
    """Train/test split, stratified when every class has enough samples."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(
            X, y, test_size=test_size, stratify=y, random_state=seed
        )
    except ValueError:
        with _usage_errors(
            f"cannot split {len(y)} samples with --test-size {test_size}: "
        ):
            return train_test_split(X, y, test_size=test_size, random_state=seed)


def _print_report(model: Any, X: Any, y: Any, args: Any, title: str) -> int:
    """Print the table (and save the plot); exit status 1 when no explainer ran."""
    kwargs = {"n_repeats": args.repeats, "random_state": args.seed}
    report = modality_report(model, X, y, show_progress=not args.quiet, **kwargs)
    if not report:
        msg = "error: no explainer could run on this model (see the notes above)"
        print(msg, file=sys.stderr)
        return 1
    shapes = {m: tuple(np.asarray(v).shape[1:]) for m, v in X.items()}
    print(f"\n{format_report(report, shapes)}\n\n{report_legend(report)}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plot_report(report, title=title)
        with _usage_errors(f"cannot save the plot to {args.plot}: ", OSError):
            fig.savefig(args.plot, dpi=120)
        plt.close(fig)
        print(f"\nplot saved to {args.plot}")
    return 0


# -- subcommands ---------------------------------------------------------------
def _train_data(args: argparse.Namespace) -> tuple[Any, np.ndarray, str, str]:
    """``(X, y, source, description)`` of ``--data`` or of the bundled data."""
    from mmexplain.data import load_npz
    from mmexplain.datasets import load_multiple_features

    if args.data:
        with _usage_errors():
            X, y = load_npz(args.data, target_key=args.target_key)
        return X, y, args.data, f"{args.data}: {len(y)} samples"
    X, y = load_multiple_features()
    source = "UCI Multiple Features"
    return X, y, source, f"{source}: {len(y)} handwritten digits"


def _pipeline(args: argparse.Namespace, modalities: Sequence[str]) -> Any:
    """Per-modality scalers (``--scaler``) and the late-fusion classifier."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from mmexplain import ModalityTransformer, MultimodalClassifier
    from mmexplain.callbacks import EpochProgressBar

    scaler = {"standard": StandardScaler, "minmax": MinMaxScaler}.get(args.scaler)
    transformers = {m: scaler() if scaler else "passthrough" for m in modalities}
    progress = EpochProgressBar(desc="training LateFusionNet")
    clf = MultimodalClassifier(
        max_epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        random_state=args.seed,
        callbacks=[] if args.quiet else [progress],
    )
    # the scalers are fitted on the training split only and saved with the network
    return make_pipeline(ModalityTransformer(transformers), clf)


def _cmd_train(args: argparse.Namespace) -> int:
    from mmexplain.persistence import save_model

    _check_output(args.save_model, "--save-model")
    _check_output(args.plot, "--plot")
    X, y, source, what = _train_data(args)
    X_train, X_test, y_train, y_test = _split(X, y, args.test_size, args.seed)
    scaled = f"{args.scaler}-scaled per modality" if args.scaler != "none" else ""
    shapes = ", ".join(
        f"{m} {'x'.join(map(str, np.shape(v)[1:]))}" for m, v in X.items()
    )
    print(
        f"{what}, {len(list(X))} modalities ({shapes}); train {len(y_train)} / test "
        f"{len(y_test)}, {scaled or 'not scaled'}"
    )
    pipe = _pipeline(args, list(X))
    t0 = time.perf_counter()
    with _usage_errors(f"cannot train on {source}: ", (TypeError, ValueError)):
        pipe.fit(X_train, y_train)
    print(
        f"trained in {time.perf_counter() - t0:.1f} s; test accuracy "
        f"{pipe.score(X_test, y_test):.3f} (train {pipe.score(X_train, y_train):.3f})"
    )
    if args.save_model:
        with _usage_errors(f"cannot save the model to {args.save_model}: ", OSError):
            save_model(pipe, args.save_model)
        print(f"model (scalers and classifier) saved to {args.save_model}")
    title = f"mmexplain: modality use on {source} (test split)"
    return _print_report(pipe[-1], pipe[:-1].transform(X_test), y_test, args, title)


def _cmd_explain(args: argparse.Namespace) -> int:
    from mmexplain.data import check_X_fitted, encode_labels, load_npz
    from mmexplain.explainers import unwrap_model

    _check_output(args.plot, "--plot")
    model = _read_model(args.model, args.trust_pickle)
    with _usage_errors():
        X, y = load_npz(args.data, target_key=args.target_key)
    with _usage_errors(
        f"{args.data} does not fit the model: ", (TypeError, ValueError)
    ):
        # the final estimator and its inputs (through the pipeline's transforms)
        final, Xt, _ = unwrap_model(model, X)
        check_X_fitted(Xt, getattr(final, "input_shapes_", None))
        if getattr(final, "classes_", None) is not None:
            encode_labels(y, final.classes_)
        score = model.score(X, y)
    print(f"score on {args.data}: {score:.3f} ({len(y)} samples)")
    return _print_report(final, Xt, y, args, f"mmexplain: modality use ({args.data})")


def _cmd_export_data(args: argparse.Namespace) -> int:
    from mmexplain.data import save_npz
    from mmexplain.datasets import load_multiple_features

    _check_output(args.path, "export-data")
    X, y = load_multiple_features()
    if args.split != "all":
        X_train, X_test, y_train, y_test = _split(X, y, args.test_size, args.seed)
        X, y = (X_train, y_train) if args.split == "train" else (X_test, y_test)
    with (
        _usage_errors(errors=ValueError),
        _usage_errors(f"cannot write {args.path}: ", OSError),
    ):
        save_npz(args.path, X, y, target_key=args.target_key)
    print(
        f"wrote {args.path}: UCI Multiple Features ({args.split}), {len(y)} samples, "
        f"modalities {list(X)}, targets under {args.target_key!r}"
    )
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train,
    "explain": _cmd_explain,
    "export-data": _cmd_export_data,
}


def _parser() -> argparse.ArgumentParser:
    return build_parser(__doc__ or "", epochs=_DEFAULT_EPOCHS, plot=_DEFAULT_PLOT)


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """Warnings as ``warning: ...`` lines on stderr (no source lines)."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mmexplain``; ``argv`` defaults to ``sys.argv[1:]``.

    Returns the exit status: 0 success, 1 no explainer could run, 2 unusable input.

    Examples
    --------
    >>> from mmexplain.__main__ import main
    >>> main(["export-data", "/nonexistent/dir/data.npz"])
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:  # no subcommand: train with its defaults
            args = parser.parse_args([*argv, "train"])
    except SystemExit as exc:  # --help, or a usage error argparse reported
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        with warnings.catch_warnings():  # restores the caller's warning display
            warnings.showwarning = _show_warning
            return _COMMANDS[args.command](args)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which has exited
        try:  # keep the interpreter's final flush from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
