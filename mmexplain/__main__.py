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
    mmexplain --quiet explain model.mmx test.npz --plot '' --html report.html
    mmexplain --quiet explain model.mmx test.npz --plot '' --format json --explainers permutation,shapley
    mmexplain --quiet --bootstrap 50 explain model.mmx test.npz --plot '' --format csv

``train --data`` and ``explain`` read an ``.npz`` file (``numpy.savez``)
holding one array per modality, named like the modalities, with the samples
along the first axis, and the targets under ``y`` (``--target-key`` to
change), with :func:`mmexplain.data.load_npz`; ``export-data`` writes the
bundled data set in that format with :func:`mmexplain.data.save_npz`
(``--split test``: the rows ``train`` holds out). ``train --save-model``
saves the whole pipeline (the per-modality scalers and the network; for a
regression, inside its ``TransformedTargetRegressor``) with
:func:`mmexplain.persistence.save_model`, a format that runs no code when it
is loaded. Pickled models load only with ``explain --trust-pickle``.

``--format json`` prints the report as one JSON object and ``--format csv``
as one row per explainer and modality (:func:`mmexplain.report.report_as_dict`,
:func:`mmexplain.report.report_rows`); the other messages then go to stderr.
``--explainers`` chooses which explainers run, ``--bootstrap N`` adds
confidence intervals, ``--html`` writes the whole report as one page
(:func:`mmexplain.report.html_report`). torch runs on one CPU thread unless
``--threads`` (or ``OMP_NUM_THREADS``) says otherwise: for the small networks
of the command line, more threads are slower. Progress bars are tqdm bars on a
terminal and plain lines (no carriage returns) in a log.

Options such as ``--seed``, ``--repeats``, ``--format``, ``--plot`` and
``--quiet`` go before or after the subcommand. ``--version`` prints the
version. Exit status: 0 on success, 1 when no explainer could
run on the model, 2 when the input is unusable (bad options; missing,
truncated or mismatched files), with one ``error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmexplain._cli_args import build_parser
from mmexplain.report import (
    format_report,
    html_report,
    modality_report,
    plot_report,
    report_as_dict,
    report_explainers,
    report_legend,
    report_rows,
)

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


def _split(
    X: Any, y: np.ndarray, test_size: float, seed: int, *, stratify: bool = True
) -> list[Any]:
    """Train/test split, stratified when every class has enough samples."""
    from sklearn.model_selection import train_test_split

    if not stratify:  # real-valued targets
        with _usage_errors(
            f"cannot split {len(y)} samples with --test-size {test_size}: "
        ):
            return train_test_split(X, y, test_size=test_size, random_state=seed)
    try:
        return train_test_split(
            X, y, test_size=test_size, stratify=y, random_state=seed
        )
    except ValueError:
        with _usage_errors(
            f"cannot split {len(y)} samples with --test-size {test_size}: "
        ):
            return train_test_split(X, y, test_size=test_size, random_state=seed)


def _info(args: argparse.Namespace, text: str) -> None:
    """A message for the reader: stdout with the table, stderr with json / csv."""
    print(text, file=sys.stdout if args.format == "table" else sys.stderr)


def _check_report_options(args: argparse.Namespace) -> None:
    """Fail before any work on unusable report options (names, output files)."""
    _check_output(args.plot, "--plot")
    _check_output(args.html, "--html")
    with _usage_errors("--explainers: ", (TypeError, ValueError)):
        report_explainers(2, explainers=args.explainers, show_progress=False)


def _print_report(
    model: Any, X: Any, y: Any, args: Any, title: str, summary: dict[str, Any]
) -> int:
    """Print the report in ``--format`` (and save the plot and the page).

    ``summary`` (data, samples, score) heads the JSON object. Exit status 1
    when no explainer ran.
    """
    report = modality_report(
        model,
        X,
        y,
        explainers=args.explainers,
        n_repeats=args.repeats,
        n_bootstrap=args.bootstrap,
        random_state=args.seed,
        show_progress=not args.quiet,
    )
    if not report:
        msg = "error: no explainer could run on this model (see the notes above)"
        print(msg, file=sys.stderr)
        return 1
    shapes = {m: tuple(np.asarray(v).shape[1:]) for m, v in X.items()}
    if args.format == "json":
        from mmexplain import __version__

        payload = {"mmexplain": __version__, **summary, **report_as_dict(report)}
        print(json.dumps(payload, indent=2, allow_nan=False))
    elif args.format == "csv":
        rows = report_rows(report)
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(f"\n{format_report(report, shapes)}\n\n{report_legend(report)}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plot_report(report, title=title)
        with _usage_errors(f"cannot save the plot to {args.plot}: ", OSError):
            fig.savefig(args.plot, dpi=120)
        plt.close(fig)
        _info(args, f"\nplot saved to {args.plot}")
    if args.html:
        with _usage_errors(f"cannot write the page {args.html}: ", OSError):
            html_report(
                report, args.html, model=model, y=y, input_shapes=shapes, title=title
            )
        _info(args, f"\nHTML report saved to {args.html}")
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


def _task(args: argparse.Namespace, y: Any) -> str:
    """``--task``, with 'auto' read from the targets (scikit-learn's ``type_of_target``)."""
    if args.task != "auto":
        return str(args.task)
    from sklearn.utils.multiclass import type_of_target

    with _usage_errors("cannot tell what the targets are: ", (TypeError, ValueError)):
        kind = type_of_target(y)
    return "regression" if kind.startswith("continuous") else "classification"


def _pipeline(
    args: argparse.Namespace, modalities: Sequence[str], task: str = "classification"
) -> Any:
    """Per-modality scalers (``--scaler``) and the late-fusion network.

    A regression's network learns standardized targets: the pipeline sits in
    a ``TransformedTargetRegressor`` whose ``predict`` and ``score`` are in
    the targets' own units.
    """
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from mmexplain import (
        ModalityTransformer,
        MultimodalClassifier,
        MultimodalRegressor,
    )
    from mmexplain.callbacks import EpochProgressBar

    scaler = {"standard": StandardScaler, "minmax": MinMaxScaler}.get(args.scaler)
    transformers = {m: scaler() if scaler else "passthrough" for m in modalities}
    progress = EpochProgressBar(desc="training LateFusionNet")
    estimator = MultimodalRegressor if task == "regression" else MultimodalClassifier
    net = estimator(
        max_epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        random_state=args.seed,
        callbacks=[] if args.quiet else [progress],
    )
    # the scalers are fitted on the training split only and saved with the network
    pipe = make_pipeline(ModalityTransformer(transformers), net)
    if task == "regression":
        return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())
    return pipe


def _cmd_train(args: argparse.Namespace) -> int:
    from mmexplain.persistence import save_model

    _check_output(args.save_model, "--save-model")
    _check_report_options(args)
    X, y, source, what = _train_data(args)
    task = _task(args, y)
    if task == "regression":
        from mmexplain.data.validation import check_regression_targets

        with _usage_errors(f"{source}: ", (TypeError, ValueError)):
            check_regression_targets(y, len(y))
    X_train, X_test, y_train, y_test = _split(
        X, y, args.test_size, args.seed, stratify=task == "classification"
    )
    scaled = f"{args.scaler}-scaled per modality" if args.scaler != "none" else ""
    shapes = ", ".join(
        f"{m} {'x'.join(map(str, np.shape(v)[1:]))}" for m, v in X.items()
    )
    _info(
        args,
        f"{what}, {len(list(X))} modalities ({shapes}); train {len(y_train)} / test "
        f"{len(y_test)}, {scaled or 'not scaled'}"
        + ("; regression (targets standardized)" if task == "regression" else ""),
    )
    pipe = _pipeline(args, list(X), task)
    t0 = time.perf_counter()
    with _usage_errors(f"cannot train on {source}: ", (TypeError, ValueError)):
        pipe.fit(X_train, y_train)
    test_score = pipe.score(X_test, y_test)
    metric = "R^2" if task == "regression" else "accuracy"
    _info(
        args,
        f"trained in {time.perf_counter() - t0:.1f} s; test {metric} "
        f"{test_score:.3f} (train {pipe.score(X_train, y_train):.3f})",
    )
    if args.save_model:
        with _usage_errors(f"cannot save the model to {args.save_model}: ", OSError):
            save_model(pipe, args.save_model)
        _info(args, f"model (scalers and network) saved to {args.save_model}")
    title = f"mmexplain: modality use on {source} (test split)"
    summary = {"data": source, "split": "test", "n_samples": len(y_test)}
    summary["task"] = task
    summary["score"] = float(test_score)
    if task == "regression":  # explained through its network on standardized y
        return _print_report(pipe, X_test, y_test, args, title, summary)
    return _print_report(
        pipe[-1], pipe[:-1].transform(X_test), y_test, args, title, summary
    )


def _cmd_explain(args: argparse.Namespace) -> int:
    from mmexplain.data import check_X_fitted, encode_labels, load_npz
    from mmexplain.explainers import unwrap_model

    _check_report_options(args)
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
    _info(args, f"score on {args.data}: {score:.3f} ({len(y)} samples)")
    title = f"mmexplain: modality use ({args.data})"
    summary = {"data": args.data, "n_samples": len(y), "score": float(score)}
    return _print_report(final, Xt, y, args, title, summary)


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
    from mmexplain import __version__

    return build_parser(
        __doc__ or "", epochs=_DEFAULT_EPOCHS, plot=_DEFAULT_PLOT, version=__version__
    )


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Any:
    """torch's CPU threads for the command (``--threads``), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if threads is None:
        threads = None if os.environ.get("OMP_NUM_THREADS") else 1
    elif threads == 0:
        threads = None
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
        with (
            warnings.catch_warnings(),  # restores the caller's warning display
            _torch_threads(getattr(args, "threads", None)),
        ):
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
