"""The argument parser of the command line (:mod:`mmexplain.__main__`).

Private: the options are documented by ``mmexplain --help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["build_parser"]


class _Formatter(
    argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    """Defaults shown for every option; the examples kept as written."""


def _number(
    cast: Callable[[str], Any], ok: Callable[[Any], bool], rule: str
) -> Callable[[str], Any]:
    """An argparse ``type``: ``cast(text)``, refused unless ``ok(value)``."""

    def parse(text: str) -> Any:
        value = cast(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
        return value

    parse.__name__ = cast.__name__  # argparse says "invalid int value: 'x'"
    return parse


positive_int = _number(int, lambda v: v >= 1, ">= 1")
non_negative_int = _number(int, lambda v: v >= 0, ">= 0")
positive_float = _number(float, lambda v: v > 0, "> 0")
fraction = _number(float, lambda v: 0 < v < 1, "between 0 and 1")


def names(text: str) -> list[str]:
    """An argparse ``type``: a comma-separated list of names, none empty."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(
            f"expected names separated by commas (e.g. permutation,shapley), got {text!r}"
        )
    return parts


def _add_common(parser: argparse.ArgumentParser, plot: str, *, sub: bool) -> None:
    """The options of ``train`` and ``explain``: before or after the subcommand."""

    def add(flag: str, default: Any, text: str, **kwargs: Any) -> None:
        if sub:
            # SUPPRESS: an option given before the subcommand is not overwritten
            # by the subcommand's default; the default is still shown
            text, default = f"{text} (default: {default})", argparse.SUPPRESS
        parser.add_argument(flag, default=default, help=text, **kwargs)

    add(
        "--seed",
        0,
        "random seed of the train/test split, the network and the explainers",
        type=int,
    )
    add(
        "--repeats",
        10,
        "permutation repeats of the utilization estimate",
        type=positive_int,
    )
    add(
        "--explainers",
        None,
        "which explainers run, comma-separated, from permutation, conditional, "
        "shapley, attribution (not given: all four)",
        type=names,
        metavar="NAMES",
    )
    add(
        "--bootstrap",
        0,
        "bootstrap resamples of the explained rows for confidence intervals of "
        "permutation and conditional utilization (json/csv output; 0: none)",
        type=non_negative_int,
        metavar="N",
    )
    add(
        "--format",
        "table",
        "how the report is printed: a text table with its legend, one JSON object "
        "(per explainer: per-modality values, shares, errors, intervals), or CSV "
        "(one row per explainer and modality); with json and csv only the report "
        "goes to stdout, the other messages to stderr",
        choices=("table", "json", "csv"),
    )
    add(
        "--html",
        "",
        "also write the report as one self-contained HTML page here "
        "(mmexplain.report.html_report; '' for none)",
        metavar="HTML",
    )
    add(
        "--plot",
        plot,
        "where to save the report's bar chart ('' for none)",
        metavar="PNG",
    )
    add(
        "--threads",
        None,
        "CPU threads of torch (not given: 1, or OMP_NUM_THREADS when that is "
        "set; one thread is fastest for the small networks of the command line "
        "and leaves the other cores free; 0: torch's own setting, by default one "
        "per core)",
        type=non_negative_int,
        metavar="N",
    )
    add("--quiet", False, "no progress bars", action="store_true")


def _add_test_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--test-size",
        type=fraction,
        default=0.25,
        help="fraction of the samples held out for testing (stratified by class "
        "for a classification)",
    )


def _add_train(sub: Any, epochs: int, plot: str) -> None:
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
    tr.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="what the targets are: 'auto' takes real-valued targets (floats "
        "that are not all whole numbers) for a regression, anything else for "
        "classes; a regression trains a MultimodalRegressor on standardized "
        "targets (TransformedTargetRegressor) and reports R^2",
    )
    _add_test_size(tr)
    tr.add_argument(
        "--epochs", type=non_negative_int, default=epochs, help="training epochs"
    )
    tr.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate")
    tr.add_argument(
        "--batch-size", type=positive_int, default=64, help="mini-batch size"
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
    _add_common(tr, plot, sub=True)


def _add_explain(sub: Any, plot: str) -> None:
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
    _add_common(ex, plot, sub=True)


def _add_export(sub: Any) -> None:
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
    _add_test_size(exp)
    exp.add_argument("--target-key", default="y", help="name of the targets array")
    exp.add_argument(
        "--seed",
        type=int,
        default=argparse.SUPPRESS,
        help="random seed of the train/test split (default: 0)",
    )


def build_parser(
    doc: str, *, epochs: int, plot: str, version: str
) -> argparse.ArgumentParser:
    """The parser of ``mmexplain``; ``doc`` gives its description and examples.

    ``doc`` is the command line's module docstring: its second paragraph is
    the description, the paragraph of ``mmexplain ...`` lines the examples.
    ``epochs`` and ``plot`` are the defaults of ``--epochs`` and ``--plot``;
    ``version`` is what ``--version`` prints after the program's name.
    """
    paragraphs = doc.split("\n\n")
    examples = next((p for p in paragraphs if p.lstrip().startswith("mmexplain")), "")
    ap = argparse.ArgumentParser(
        prog="mmexplain",
        description=paragraphs[1],
        epilog="examples:\n" + examples,
        formatter_class=_Formatter,
    )
    ap.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {version}",
        help="print the version of mmexplain and exit",
    )
    _add_common(ap, plot, sub=False)
    sub = ap.add_subparsers(
        dest="command",
        metavar="{train,explain,export-data}",
        help="what to do (no subcommand: train)",
    )
    _add_train(sub, epochs, plot)
    _add_explain(sub, plot)
    _add_export(sub)
    return ap
