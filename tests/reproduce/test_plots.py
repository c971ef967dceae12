"""Report figures: a curve per group (``line``), one marker per model (``points``), bars per row (``bars``)."""
from __future__ import annotations

import pytest

from leannets.reproduce import plots
from leannets.reproduce.reference import load_reference
from leannets.reproduce.results import ExperimentResult, RowResult
from leannets.reproduce.spec import Experiment, ModelSpec, PlotSpec, Row

ROWS = [("a", "model A", 1.0, 40.0), ("b", "model B", 2.0, 45.0), ("c", "model C", 2.0, 43.0)]


def _experiment(plot: PlotSpec) -> tuple[Experiment, ExperimentResult]:
    exp = Experiment("t", "Table 9", "test", [Row(k, label, ModelSpec("vgg_cifar_small"), group="family")
                                                  for k, label, _, _ in ROWS], plots=[plot])
    res = ExperimentResult("t", "Table 9", "test", "cpu",
                           rows=[RowResult(k, label, {}, group="family", metrics={"macs": x * 1e6, "acc1": y})
                                 for k, label, x, y in ROWS])
    return exp, res


@pytest.fixture
def captured(monkeypatch):
    """The figure draw_plot saves (inspected before it is closed), and the file still written."""
    figs = []
    real = plots.save_figure

    def save(fig, path):
        figs.append(fig)
        return real(fig, path)

    monkeypatch.setattr(plots, "save_figure", save)
    return figs


def _draw(kind: str, tmp_path, captured):
    plot = PlotSpec("p.png", x="macs", y="acc1", title="t", xlabel="MACs (M)", ylabel="acc", x_scale=1e6, kind=kind)
    exp, res = _experiment(plot)
    path = plots.draw_plot(plot, exp, res, load_reference("wae"), tmp_path / "p.png")
    assert path is not None and path.stat().st_size > 0
    return captured[-1].axes[0]


def test_line_joins_a_group_into_one_curve(tmp_path, captured):
    ax = _draw("line", tmp_path, captured)
    assert len(ax.lines) == 1 and len(ax.lines[0].get_xdata()) == 3


def test_points_give_each_model_its_own_marker_and_legend_entry(tmp_path, captured):
    ax = _draw("points", tmp_path, captured)
    assert [len(line.get_xdata()) for line in ax.lines] == [1, 1, 1]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"{label} (ours, cpu)" for _, label, _, _ in ROWS]


def test_bars_draw_one_bar_per_row_with_its_value(tmp_path, captured):
    ax = _draw("bars", tmp_path, captured)
    assert [round(b.get_height(), 6) for b in ax.patches] == [y for *_, y in ROWS]
    assert [t.get_text() for t in ax.get_xticklabels()] == [label for _, label, _, _ in ROWS]


def test_bars_need_no_x_and_nothing_to_draw_gives_no_file(tmp_path):
    plot = PlotSpec("p.png", x="params", y="acc1", title="t", xlabel="", ylabel="acc", kind="bars")  # no params
    exp, res = _experiment(plot)
    assert plots.draw_plot(plot, exp, res, load_reference("wae"), tmp_path / "p.png") is not None
    empty = PlotSpec("q.png", x="macs", y="psnr", title="t", xlabel="", ylabel="dB", kind="bars")
    assert plots.draw_plot(empty, exp, res, load_reference("wae"), tmp_path / "q.png") is None
    assert not (tmp_path / "q.png").exists()


def test_unknown_kind_is_rejected_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown kind 'pie'.*line, points, bars"):
        PlotSpec("p.png", x="macs", y="acc1", title="t", xlabel="", ylabel="", kind="pie")


def test_rows_trained_with_seeds_get_their_95_percent_interval_as_error_bars(tmp_path, captured):
    plot = PlotSpec("p.png", x="macs", y="acc1", title="t", xlabel="MACs (M)", ylabel="acc", x_scale=1e6)
    exp, res = _experiment(plot)
    for rr in res.rows:
        rr.metrics["acc1_ci"] = [rr.metrics["acc1"] - 1.0, rr.metrics["acc1"] + 2.0]
    plots.draw_plot(plot, exp, res, load_reference("wae"), tmp_path / "p.png")
    ax = captured[-1].axes[0]
    bars = [c for c in ax.collections if c.get_segments()]  # the vertical error-bar segments
    spans = sorted(round(float(s[1][1] - s[0][1]), 6) for c in bars for s in c.get_segments())
    assert spans == [3.0, 3.0, 3.0]
    assert "mean ± 95% CI" in ax.get_legend().get_texts()[0].get_text()
    bar_plot = PlotSpec("b.png", x="macs", y="acc1", title="t", xlabel="", ylabel="acc", kind="bars")
    plots.draw_plot(bar_plot, exp, res, load_reference("wae"), tmp_path / "b.png")
    assert any(c.get_segments() for c in captured[-1].axes[0].collections)
