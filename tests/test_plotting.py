"""What the helpers of mmexplain.plotting draw: bar heights, error bars, lines, images."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

from mmexplain import ModalityExplanation  # noqa: E402
from mmexplain.plotting import (  # noqa: E402
    plot_class_scores,
    plot_class_utilization,
    plot_label_maps,
    plot_metric_vs_corruption,
    plot_pixel_maps,
    plot_share_comparison,
    plot_shares,
    plot_utilization_history,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _permutation(shares=(75.0, 25.0), modalities=("eo", "sar")):
    """An explanation with repeats, so that share_errors() is defined."""
    shares = np.asarray(shares, dtype=float)
    # three repeats whose shares are shares +- a known spread
    importances = np.stack([shares * f for f in (0.9, 1.0, 1.1)], axis=1)
    importances[0] *= np.array([1.0, 1.2, 0.8])
    return ModalityExplanation(
        modalities=tuple(modalities),
        method="permutation",
        params={},
        shares=shares,
        importances=importances,
        importances_mean=importances.mean(axis=1),
        importances_std=importances.std(axis=1),
        baseline_score=0.5,
    )


def _errorbar_halfwidths(ax):
    """Half-lengths of the vertical error bars drawn on ``ax`` (per bar)."""
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    widths = []
    for container in containers:
        (segments,) = container.lines[2]
        widths.extend((seg[1, 1] - seg[0, 1]) / 2 for seg in segments.get_segments())
    return np.asarray(widths)


def _bars(ax):
    return [c for c in ax.containers if isinstance(c, BarContainer)]


# -- plot_shares -------------------------------------------------------------
def test_plot_shares_heights_errorbars_labels_and_title():
    e = _permutation()
    ax = plot_shares(e)
    (bars,) = _bars(ax)
    assert [b.get_height() for b in bars] == pytest.approx([75.0, 25.0])
    assert _errorbar_halfwidths(ax) == pytest.approx(e.share_errors())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["eo", "sar"]
    assert ax.get_title() == "Permutation modality utilization"
    assert [t.get_text() for t in ax.texts] == ["75.0%", "25.0%"]
    assert ax.get_ylim() == (0.0, 100.0)


def test_plot_shares_without_errors_and_with_nan():
    e = ModalityExplanation(
        modalities=("a", "b"),
        method="conditional",
        params={},
        shares=np.array([np.nan, np.nan]),
    )
    ax = plot_shares(e, title="custom")
    (bars,) = _bars(ax)
    assert [b.get_height() for b in bars] == [0.0, 0.0]
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(ax.texts) == 0 and ax.get_title() == "custom"


def test_plot_shares_draws_on_the_given_axes():
    fig, ax = plt.subplots()
    assert plot_shares(_permutation(), ax=ax) is ax
    assert len(fig.axes) == 1


# -- plot_share_comparison ------------------------------------------------------
def test_plot_share_comparison_groups_bars_by_modality():
    e = _permutation((60.0, 40.0))
    ax = plot_share_comparison(
        {"permutation": e, "other": {"sar": 10.0, "eo": 90.0}, "third": [50.0, 50.0]}
    )
    bars = _bars(ax)
    assert [c.get_label() for c in bars] == ["permutation", "other", "third"]
    # the mapping is re-ordered to the first explanation's modalities
    heights = [[b.get_height() for b in c] for c in bars]
    assert heights == [pytest.approx([60, 40]), [90, 10], [50, 50]]
    # bars of one modality sit side by side around its tick
    centers = np.array([[b.get_x() + b.get_width() / 2 for b in c] for c in bars])
    assert centers[:, 0] == pytest.approx([-0.8 / 3, 0.0, 0.8 / 3])
    assert ax.get_xticks().tolist() == [0, 1]
    # error bars only for the explanation that has them
    assert _errorbar_halfwidths(ax) == pytest.approx(e.share_errors())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "permutation",
        "other",
        "third",
    ]


def test_plot_share_comparison_errors_can_be_off_and_checks_inputs():
    ax = plot_share_comparison({"x": _permutation()}, errors=False, annotate=False)
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(ax.texts) == 0
    with pytest.raises(ValueError, match="no explanations"):
        plot_share_comparison({})
    with pytest.raises(ValueError, match="no share for modalities"):
        plot_share_comparison({"a": {"eo": 1.0, "sar": 2.0}, "b": {"eo": 3.0}})
    with pytest.raises(TypeError, match="give the modalities"):
        plot_share_comparison({"a": [1.0, 2.0]})


# -- plot_utilization_history --------------------------------------------------
HISTORY = [
    {"epoch": 1, "train_loss": 1.0, "utilization": {"eo": 80.0, "sar": 20.0}},
    {"epoch": 2, "train_loss": 0.9},  # not measured this epoch (every=2)
    {"epoch": 3, "train_loss": 0.8, "utilization": {"eo": 60.0, "sar": 40.0}},
]


def test_plot_utilization_history_one_line_per_modality_skipping_epochs():
    ax = plot_utilization_history(HISTORY, targets={"eo": 50.0})
    curves, target = ax.get_lines()[:2], ax.get_lines()[2]
    assert [line.get_label() for line in curves] == ["eo", "sar"]
    assert curves[0].get_xdata().tolist() == [1, 3]
    assert curves[0].get_ydata().tolist() == [80.0, 60.0]
    assert curves[1].get_ydata().tolist() == [20.0, 40.0]
    assert list(target.get_ydata()) == [50.0, 50.0]
    assert target.get_color() == curves[0].get_color()
    assert ax.get_xlabel() == "epoch" and ax.get_ylim() == (0.0, 100.0)


def test_plot_utilization_history_label_modalities_and_errors():
    ax = plot_utilization_history(
        HISTORY, modalities=["sar"], label="run A", linestyle="--"
    )
    (line,) = ax.get_lines()
    assert line.get_label() == "run A: sar" and line.get_linestyle() == "--"
    with pytest.raises(ValueError, match="records 'missing'"):
        plot_utilization_history(HISTORY, key="missing")


def test_plot_utilization_history_reads_a_skorch_history():
    from skorch.history import History

    history = History()
    for row in HISTORY:
        history.new_epoch()
        for key, value in row.items():
            history.record(key, value)
    ax = plot_utilization_history(history)
    assert ax.get_lines()[0].get_ydata().tolist() == [80.0, 60.0]


# -- plot_metric_vs_corruption -------------------------------------------------
def test_plot_metric_vs_corruption_lines_and_error_bars():
    ax = plot_metric_vs_corruption(
        [0.0, 0.5, 1.0],
        {"retrained": [0.9, 0.8, 0.7], "test only": [0.9, 0.6, 0.3]},
        errors={"retrained": [0.01, 0.02, 0.03]},
        xlabel="blackout",
    )
    (with_errors,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert with_errors.get_label() == "retrained"
    assert with_errors.lines[0].get_ydata().tolist() == [0.9, 0.8, 0.7]
    (plain,) = [line for line in ax.get_lines() if line.get_label() == "test only"]
    assert plain.get_ydata().tolist() == [0.9, 0.6, 0.3]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["retrained", "test only"]
    assert _errorbar_halfwidths(ax) == pytest.approx([0.01, 0.02, 0.03])
    assert ax.get_xlabel() == "blackout"


def test_plot_metric_vs_corruption_checks_lengths():
    with pytest.raises(ValueError, match="has 2 points for 3 levels"):
        plot_metric_vs_corruption([0, 1, 2], {"a": [1, 2]})
    with pytest.raises(ValueError, match="errors of 'a'"):
        plot_metric_vs_corruption([0, 1], {"a": [1, 2]}, errors={"a": [1]})
    with pytest.raises(ValueError, match="unknown curves"):
        plot_metric_vs_corruption([0, 1], {"a": [1, 2]}, errors={"b": [1, 1]})


# -- plot_class_scores / plot_class_utilization --------------------------------
def test_plot_class_scores_bars_nan_and_mean_title():
    ax = plot_class_scores([0.9, np.nan, 0.5], ["road", "sky", "metal"])
    (bars,) = _bars(ax)
    assert [b.get_height() for b in bars] == [0.9, 0.0, 0.5]
    assert [t.get_text() for t in ax.texts] == ["0.900", "n/a", "0.500"]
    assert ax.get_title() == "mean IoU 0.700"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["road", "sky", "metal"]
    with pytest.raises(ValueError, match="3 scores for 2 class names"):
        plot_class_scores([1, 2, 3], ["a", "b"])


def test_plot_class_utilization_heat_map_cells_and_colorbar():
    values = np.array([[80.0, 10.0, np.nan], [20.0, 90.0, 50.0]])
    ax = plot_class_utilization(values, ["rgb", "dolp"], ["a", "b", "c"])
    shown = ax.images[0].get_array()
    assert np.array_equal(np.ma.filled(shown, np.nan), values, equal_nan=True)
    assert [t.get_text() for t in ax.texts] == ["80", "10", "20", "90", "50"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rgb", "dolp"]
    assert len(ax.figure.axes) == 2  # the colour bar
    with pytest.raises(ValueError, match="values of shape"):
        plot_class_utilization(values, ["rgb"], ["a", "b", "c"])


# -- segmentation maps -----------------------------------------------------------
def test_plot_label_maps_shared_class_colours_and_legend():
    truth = np.array([[0, 1], [2, 2]])
    pred = np.array([[0, 0], [2, 1]])
    axes = plot_label_maps(
        {"truth": truth, "prediction": pred}, class_names=["a", "b", "c"]
    )
    assert [ax.get_title() for ax in axes] == ["truth", "prediction"]
    assert axes[0].images[0].get_array().tolist() == truth.tolist()
    # the same label has the same colour in every panel
    rgba_truth = axes[0].images[0].to_rgba(axes[0].images[0].get_array())
    rgba_pred = axes[1].images[0].to_rgba(axes[1].images[0].get_array())
    assert np.allclose(rgba_truth[1, 0], rgba_pred[1, 0])  # both class 2
    assert np.allclose(rgba_truth[0, 1], rgba_pred[1, 1])  # both class 1
    assert not np.allclose(rgba_truth[0, 0], rgba_truth[0, 1])
    legend = axes[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "c"]


def test_plot_label_maps_ignore_index_and_given_axes():
    fig, axes = plt.subplots(1, 3)
    mask = np.array([[0, 255], [1, 1]])
    out = plot_label_maps({"m": mask}, axes=axes, ignore_index=255, legend=False)
    assert out[0] is axes[0]
    shown = out[0].images[0].get_array()
    assert shown.mask.tolist() == [[False, True], [False, False]]
    assert out[0].get_legend() is None
    with pytest.raises(ValueError, match="expected \\(H, W\\)"):
        plot_label_maps({"m": np.zeros((2, 2, 2))})
    with pytest.raises(ValueError, match="need 2 axes"):
        plot_label_maps({"a": mask, "b": mask}, axes=axes[:1])


def test_plot_pixel_maps_shared_scale_and_colorbar():
    maps = {"rgb": np.array([[0.0, 2.0], [1.0, 1.0]]), "nir": np.zeros((2, 2))}
    axes = plot_pixel_maps(maps, colorbar_label="loss increase")
    assert [ax.get_title() for ax in axes] == ["rgb", "nir"]
    assert [ax.images[0].get_clim() for ax in axes] == [(0.0, 2.0), (0.0, 2.0)]
    assert axes[0].images[0].get_array().tolist() == maps["rgb"].tolist()
    fig = axes[0].figure
    assert len(fig.axes) == 3  # two panels and one shared colour bar
    assert fig.axes[-1].get_ylabel() == "loss increase"


def test_plot_pixel_maps_own_scales():
    maps = {"a": np.array([[0.0, 4.0]]), "b": np.array([[1.0, 2.0]])}
    axes = plot_pixel_maps(maps, shared_scale=False, colorbar=False)
    assert [ax.images[0].get_clim() for ax in axes] == [(0.0, 4.0), (1.0, 2.0)]
    assert len(axes[0].figure.axes) == 2
