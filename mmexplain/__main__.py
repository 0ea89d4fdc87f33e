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
change); ``export-data`` writes the bundled data set in that format (``--split
test``: the rows ``train`` holds out). ``train --save-model`` saves the whole
pipeline (the per-modality scalers and the classifier) with
:func:`mmexplain.persistence.save_model`, a format that runs no code when it
is loaded. Pickled models load only with ``explain --trust-pickle``.

Options such as ``--seed``, ``--repeats``, ``--plot`` and ``--quiet`` go before
or after the subcommand. Exit status: 0 on success, 1 when no explainer could
run on the model, 2 when the input is unusable (bad options; missing,
truncated or mismatched files), with one ``error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mmexplain.report import format_report, modality_report, plot_report, report_legend

# modality_report lives in mmexplain.report; importable from here as before
__all__ = ["main", "modality_report"]

__all__ = ["main", "modality_report"]

# default number of training epochs of ``mmexplain`` / ``mmexplain train``
_DEFAULT_EPOCHS = 30
_DEFAULT_PLOT = "mmexplain_report.png"
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


class _UsageError(Exception):
    """A problem with the user's input: one ``error:`` line on stderr, exit status 2."""


def _save_plot(report: dict[str, Any], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_report(report, title=title)
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise _UsageError(f"cannot save the plot to {path}: {exc}") from exc
    finally:
        plt.close(fig)


def _print_report(
    model: Any, X: Any, y: Any, args: argparse.Namespace, title: str
) -> bool:
    """Print the table (and save the plot); False when no explainer could run."""
    report = modality_report(
        model,
        X,
        y,
        n_repeats=args.repeats,
        random_state=args.seed,
        show_progress=not args.quiet,
    )
    if not report:
        print(
            "error: no explainer could run on this model (see the notes above)",
            file=sys.stderr,
        )
        return False
    shapes = {m: tuple(np.asarray(v).shape[1:]) for m, v in X.items()}
    print()
    print(format_report(report, shapes))
    print()
    print(report_legend(report))
    if args.plot:
        _save_plot(report, args.plot, title)
        print(f"\nplot saved to {args.plot}")
    return True


# ----------------------------------------------------------------------------
# input and output files
# ----------------------------------------------------------------------------
def _check_output(path: str | None, what: str) -> None:
    """Fail before any work when ``path`` cannot be written."""
    if not path:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise _UsageError(f"{what} {path}: the directory {parent} does not exist")
    if os.path.isdir(path):
        raise _UsageError(f"{what} {path} is a directory")


def _shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


def _read_npz(path: str, target_key: str) -> tuple[Any, np.ndarray]:
    """Modalities and targets from an ``.npz``; `_UsageError` for anything unusable."""
    from mmexplain import ModalityDict

    if not os.path.exists(path):
        raise _UsageError(f"data file {path} does not exist")
    hint = (
        f"expected an .npz file (numpy.savez) with one array per modality and the "
        f"targets under {target_key!r}"
    )
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc}") from exc
    if not magic.startswith((b"PK\x03\x04", b"\x93NUMPY")):
        raise _UsageError(f"{path} is not an .npz file; {hint}")
    try:
        data = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise _UsageError(
            f"cannot read {path}: not a readable .npz file ({exc}); {hint}"
        ) from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise _UsageError(f"{path} holds a single array; {hint}")
    arrays: dict[str, np.ndarray] = {}
    with data:
        for name in data.files:
            try:
                arrays[name] = data[name]
            except ValueError as exc:  # e.g. an object array: not read without pickle
                raise _UsageError(
                    f"cannot read array {name!r} of {path}: {exc}"
                ) from exc
            except _READ_ERRORS as exc:
                raise _UsageError(
                    f"cannot read array {name!r} of {path} (truncated or corrupted "
                    f"file?): {exc}"
                ) from exc
    if target_key not in arrays:
        raise _UsageError(
            f"{path} has no {target_key!r} array (the targets; --target-key names "
            f"it); it has {sorted(arrays)}"
        )
    y = arrays.pop(target_key)
    if not arrays:
        raise _UsageError(
            f"{path} has no modality arrays besides the targets {target_key!r}"
        )
    for name, arr in arrays.items():
        if arr.dtype.kind not in "biuf":
            raise _UsageError(
                f"modality {name!r} of {path} has dtype {arr.dtype}; modalities must "
                "be numeric arrays"
            )
        if arr.ndim < 2:
            raise _UsageError(
                f"modality {name!r} of {path} has shape {arr.shape}; a modality needs "
                "one row per sample, shape (n_samples, ...) (reshape a single "
                "feature to (n_samples, 1))"
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            rows = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
            raise _UsageError(
                f"modality {name!r} of {path} contains NaN or infinite values (first "
                f"in row {rows[0]}; {len(rows)} row(s) in all)"
            )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise _UsageError(
            f"the targets {target_key!r} of {path} have shape {y.shape}; expected one "
            "label per sample, shape (n_samples,)"
        )
    try:
        X = ModalityDict(arrays)
    except (TypeError, ValueError) as exc:
        raise _UsageError(f"{path}: {exc}") from exc
    if len(y) != len(X):
        raise _UsageError(
            f"{path}: the targets {target_key!r} have {len(y)} rows but the "
            f"modalities have {len(X)}"
        )
    return X, y


def _read_model(path: str, trust_pickle: bool) -> Any:
    from mmexplain.persistence import load_model

    if not os.path.exists(path):
        raise _UsageError(f"model file {path} does not exist")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = load_model(path, trust_pickle=trust_pickle)
        except ValueError as exc:
            raise _UsageError(str(exc)) from exc
        except OSError as exc:
            raise _UsageError(f"cannot read model file {path}: {exc}") from exc
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if not (hasattr(model, "predict") and hasattr(model, "score")):
        raise _UsageError(
            f"{path} holds a {type(model).__name__} object, not a fitted model"
        )
    return model


def _split_pipeline(model: Any) -> tuple[Any, Any]:
    """(preprocessing or None, final estimator) of a model or a Pipeline."""
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        if len(model.steps) == 1:
            return None, model.steps[0][1]
        return model[:-1], model.steps[-1][1]
    return None, model


def _check_data_fits(
    model: Any, X: Mapping[str, Any], y: np.ndarray, path: str, target_key: str
) -> None:
    """Modality names, per-sample shapes and labels against the fitted model."""
    pre, final = _split_pipeline(model)
    classes = getattr(final, "classes_", None)
    if classes is not None and y.ndim == 1:
        classes = np.asarray(classes)
        try:
            unknown_labels = np.setdiff1d(np.unique(y), classes)
        except TypeError:  # labels of incomparable types (e.g. str and int)
            unknown_labels = np.array(
                [v for v in set(y.tolist()) if v not in set(classes.tolist())]
            )
        if unknown_labels.size:
            raise _UsageError(
                f"{path} does not fit the model: the targets {target_key!r} contain "
                f"labels {unknown_labels[:5].tolist()} that are not among the "
                f"model's classes {classes.tolist()[:20]}"
            )
    first = pre.steps[0][1] if pre is not None else final
    expected = getattr(first, "modalities_", None)
    if expected is None:
        expected = getattr(final, "modalities_", None)
    if expected is not None:
        missing = [m for m in expected if m not in X]
        unknown = [m for m in X if m not in expected]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"lacks {missing}")
            if unknown:
                parts.append(f"has unknown arrays {unknown}")
            raise _UsageError(
                f"{path} does not match the model: the model was trained on "
                f"modalities {list(expected)}, {path} {' and '.join(parts)} (besides "
                "the targets)"
            )
    transformers = getattr(first, "transformers_", None) if pre is not None else None
    shapes = getattr(final, "input_shapes_", None) or {}
    for m, arr in X.items():
        got = tuple(int(s) for s in np.shape(arr)[1:])
        t = transformers.get(m) if isinstance(transformers, Mapping) else None
        n_in = getattr(t, "n_features_in_", None)
        if n_in is not None and int(np.prod(got)) != int(n_in):
            raise _UsageError(
                f"modality {m!r} of {path} has shape {got} per sample "
                f"({int(np.prod(got))} values) but the model was trained on "
                f"{int(n_in)} values per sample"
            )
        direct = pre is None or (isinstance(t, str) and t == "passthrough")
        exp = tuple(shapes.get(m, ())) if direct else ()
        if exp and (
            len(exp) != len(got)
            or (len(exp) == 1 and exp != got)
            or (len(exp) > 1 and exp[0] != got[0])
        ):
            raise _UsageError(
                f"modality {m!r} of {path} has shape {got} per sample but the model "
                f"was trained on {exp}"
            )


def _split(X: Any, y: np.ndarray, test_size: float, seed: int) -> list[Any]:
    """Train/test split, stratified when every class has enough samples."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(
            X, y, test_size=test_size, stratify=y, random_state=seed
        )
    except ValueError:
        try:
            return train_test_split(X, y, test_size=test_size, random_state=seed)
        except ValueError as exc:
            raise _UsageError(
                f"cannot split {len(y)} samples with --test-size {test_size}: {exc}"
            ) from exc


def _bundled_data() -> tuple[Any, np.ndarray]:
    from mmexplain.datasets import load_multiple_features

    return load_multiple_features()


# ----------------------------------------------------------------------------
# subcommands
# ----------------------------------------------------------------------------
def _scaler(kind: str) -> Any:
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    return {"standard": StandardScaler, "minmax": MinMaxScaler}[kind]()


def _cmd_train(args: argparse.Namespace) -> int:
    from sklearn.pipeline import Pipeline

    from mmexplain import ModalityTransformer, MultimodalClassifier
    from mmexplain.callbacks import EpochProgressBar
    from mmexplain.persistence import save_model

    _check_output(args.save_model, "--save-model")
    _check_output(args.plot, "--plot")
    if args.data:
        X, y = _read_npz(args.data, args.target_key)
        source, what = args.data, f"{args.data}: {len(y)} samples"
    else:
        X, y = _bundled_data()
        source = "UCI Multiple Features"
        what = f"UCI Multiple Features: {len(y)} handwritten digits"
    X_train, X_test, y_train, y_test = _split(X, y, args.test_size, args.seed)
    if args.scaler == "none":
        transformers: dict[str, Any] = {m: "passthrough" for m in X}
        scaled = "not scaled"
    else:
        transformers = {m: _scaler(args.scaler) for m in X}
        scaled = f"{args.scaler}-scaled per modality"
    print(
        f"{what}, {len(X.modalities)} modalities "
        f"({', '.join(f'{m} {_shape_str(np.shape(v)[1:])}' for m, v in X.items())}); "
        f"train {len(y_train)} / test {len(y_test)}, {scaled}"
    )
    scaler = ModalityTransformer(transformers)
    clf = MultimodalClassifier(
        max_epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        random_state=args.seed,
        callbacks=[]
        if args.quiet
        else [EpochProgressBar(desc="training LateFusionNet")],
    )
    # the scalers are fitted on the training split only and saved with the network
    pipe = Pipeline([("modalitytransformer", scaler), ("multimodalclassifier", clf)])
    t0 = time.perf_counter()
    try:
        pipe.fit(X_train, y_train)
    except (TypeError, ValueError) as exc:
        raise _UsageError(f"cannot train on {source}: {exc}") from exc
    print(
        f"trained in {time.perf_counter() - t0:.1f} s; test accuracy "
        f"{pipe.score(X_test, y_test):.3f} (train {pipe.score(X_train, y_train):.3f})"
    )
    if args.save_model:
        try:
            save_model(pipe, args.save_model)
        except OSError as exc:
            raise _UsageError(
                f"cannot save the model to {args.save_model}: {exc}"
            ) from exc
        print(f"model (scalers and classifier) saved to {args.save_model}")
    ok = _print_report(
        clf,
        scaler.transform(X_test),
        y_test,
        args,
        f"mmexplain: modality use on {source} (test split)",
    )
    return 0 if ok else 1


def _cmd_explain(args: argparse.Namespace) -> int:
    _check_output(args.plot, "--plot")
    model = _read_model(args.model, args.trust_pickle)
    X, y = _read_npz(args.data, args.target_key)
    _check_data_fits(model, X, y, args.data, args.target_key)
    try:
        score = model.score(X, y)
    except (TypeError, ValueError) as exc:
        raise _UsageError(f"{args.data} does not fit the model: {exc}") from exc
    print(f"score on {args.data}: {score:.3f} ({len(y)} samples)")
    pre, final = _split_pipeline(model)
    Xf = pre.transform(X) if pre is not None else X
    ok = _print_report(final, Xf, y, args, f"mmexplain: modality use ({args.data})")
    return 0 if ok else 1


def _cmd_export_data(args: argparse.Namespace) -> int:
    _check_output(args.path, "export-data")
    X, y = _bundled_data()
    if args.split != "all":
        X_train, X_test, y_train, y_test = _split(X, y, args.test_size, args.seed)
        X, y = (X_train, y_train) if args.split == "train" else (X_test, y_test)
    if args.target_key in X:
        raise _UsageError(
            f"--target-key {args.target_key!r} is the name of a modality; pick another"
        )
    arrays = {m: np.asarray(v) for m, v in X.items()}
    arrays[args.target_key] = np.asarray(y)
    try:
        with open(args.path, "wb") as fh:  # np.savez(name) would append '.npz'
            np.savez(fh, **arrays)
    except OSError as exc:
        raise _UsageError(f"cannot write {args.path}: {exc}") from exc
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


# ----------------------------------------------------------------------------
# parser
# ----------------------------------------------------------------------------
class _Formatter(
    argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    """Defaults shown for every option; the examples kept as written."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


# options accepted before and after the subcommand
_COMMON: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "--seed",
        {
            "type": int,
            "default": 0,
            "help": "random seed of the train/test split, the network and the explainers",
        },
    ),
    (
        "--repeats",
        {
            "type": _positive_int,
            "default": 10,
            "help": "permutation repeats of the utilization estimate",
        },
    ),
    (
        "--plot",
        {
            "default": _DEFAULT_PLOT,
            "metavar": "PNG",
            "help": "where to save the report's bar chart ('' for none)",
        },
    ),
    ("--quiet", {"action": "store_true", "help": "no progress bars"}),
)


def _add_common(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    for flag, kwargs in _COMMON:
        kwargs = dict(kwargs)
        if sub:
            # SUPPRESS: an option given before the subcommand is not overwritten
            # by the subcommand's default; the default is still shown
            kwargs["help"] += f" (default: {kwargs.get('default', False)})"
            kwargs["default"] = argparse.SUPPRESS
        parser.add_argument(flag, **kwargs)


def _add_split_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--test-size",
        type=_fraction,
        default=0.25,
        help="fraction of the samples held out for testing (stratified by class)",
    )


def _parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    paragraphs = doc.split("\n\n")
    examples = next((p for p in paragraphs if p.lstrip().startswith("mmexplain")), "")
    ap = argparse.ArgumentParser(
        prog="mmexplain",
        description=paragraphs[1],
        epilog="examples:\n" + examples,
        formatter_class=_Formatter,
    )
    _add_common(ap, sub=False)
    sub = ap.add_subparsers(
        dest="command",
        metavar="{train,explain,export-data}",
        help="what to do (no subcommand: train)",
    )
    tr = sub.add_parser(
        "train",
        help="train on the bundled data or your .npz, report modality use (the default)",
        description="Train a late-fusion network (per-modality scalers + "
        "MultimodalClassifier) on the bundled UCI Multiple Features data or on "
        "your own .npz, print the test accuracy and the modality report.",
        formatter_class=_Formatter,
    )
    tr.add_argument(
        "--data",
        default=None,
        metavar="NPZ",
        help="your data: an .npz with one array per modality and the targets; "
        "without it, the bundled UCI Multiple Features data",
    )
    tr.add_argument(
        "--target-key", default="y", help="name of the targets array in --data"
    )
    _add_split_options(tr)
    tr.add_argument(
        "--epochs",
        type=_non_negative_int,
        default=_DEFAULT_EPOCHS,
        help="training epochs",
    )
    tr.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate")
    tr.add_argument(
        "--batch-size", type=_positive_int, default=64, help="mini-batch size"
    )
    tr.add_argument(
        "--scaler",
        choices=("standard", "minmax", "none"),
        default="standard",
        help="per-modality scaling fitted on the training split",
    )
    tr.add_argument(
        "--save-model",
        default=None,
        metavar="FILE",
        help="save the fitted pipeline (scalers + classifier) here, in the safe "
        "format of mmexplain.persistence (e.g. model.mmx)",
    )
    _add_common(tr, sub=True)
    ex = sub.add_parser(
        "explain",
        help="report modality use of a saved model on an .npz of modalities",
        description="Load a model saved by 'train --save-model' (or "
        "mmexplain.persistence.save_model), print its score on your data and the "
        "modality report.",
        formatter_class=_Formatter,
    )
    ex.add_argument("model", help="model file written by train --save-model")
    ex.add_argument("data", help="an .npz with one array per modality and the targets")
    ex.add_argument("--target-key", default="y", help="name of the targets array")
    ex.add_argument(
        "--trust-pickle",
        action="store_true",
        help="also load a pickled model; unpickling runs any code in the file, so "
        "only for files you trust",
    )
    _add_common(ex, sub=True)
    exp = sub.add_parser(
        "export-data",
        help="write the bundled data set as an .npz (the format train --data and "
        "explain read)",
        description="Write the bundled UCI Multiple Features data (or the train "
        "or test split that 'train' uses) as an .npz of one array per modality "
        "plus the targets.",
        formatter_class=_Formatter,
    )
    exp.add_argument("path", help="the .npz file to write")
    exp.add_argument(
        "--split",
        choices=("all", "train", "test"),
        default="all",
        help="which rows: all, or the train / test split of 'train' with the "
        "same --seed and --test-size",
    )
    _add_split_options(exp)
    exp.add_argument("--target-key", default="y", help="name of the targets array")
    exp.add_argument(
        "--seed",
        type=int,
        default=argparse.SUPPRESS,
        help="random seed of the train/test split (default: 0)",
    )
    return ap


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Warnings as ``warning: ...`` lines on stderr (no source lines)."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mmexplain`` and the ``mmexplain`` command.

    Parameters
    ----------
    argv : sequence of str or None, default=None
        Command-line arguments without the program name (None: ``sys.argv``).

    Returns
    -------
    int
        Exit status: 0 success, 1 no explainer could run, 2 unusable input.

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
