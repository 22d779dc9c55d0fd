"""compare's charts: none drawn empty, each names its dataset in plain words, legends beside the
bars rather than over them."""

from lrd.compare import ModelRuns, bar_figure, discover_figure, lift, lifts_figure


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def _runs(name: str, ndcg: list[float]) -> ModelRuns:
    return ModelRuns(name, {seed: {"test": {m: x for m in ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20")}, "best_epoch": 1}
                            for seed, x in enumerate(ndcg, start=1)})


def test_a_lifts_chart_without_lifts_says_so():
    """Last round: reports/ml-100k/lifts.png was empty axes with an empty legend."""
    fig = lifts_figure("ml-100k", {})
    assert "No lift to show yet" in _texts(fig) and "ml-100k" in _texts(fig) and fig.axes[0].get_legend() is None
    gains = {"kda_lrd": ("kda", [lift(_runs("kda_lrd", [0.31, 0.33]), _runs("kda", [0.30, 0.32]), m) for m in ("NDCG@5", "HR@5")])}
    fig = lifts_figure("ml-100k", gains)
    assert "No lift" not in _texts(fig) and "kda_lrd vs kda (n=2)" in _texts(fig)


def test_the_discover_chart_names_its_dataset_in_plain_words(tmp_path):
    curve = tmp_path / "discover.csv"
    curve.write_text("epoch,train_lrd,train_lrd_accuracy,holdout_lrd,holdout_lrd_accuracy\n1,0.4,0.7,0.3,0.75\n2,0.2,0.8,0.1,0.9\n")
    text = _texts(discover_figure(curve, "Office"))
    assert "Office" in text and "h⁻" not in text and "scores above a random item" in text and "held-out pairs" in text


def test_the_results_legend_does_not_cover_the_bars():
    fig = bar_figure({m: _runs(m, [0.9, 0.95]) for m in ("sasrec", "rcf", "kda", "rcf_lrd", "kda_lrd")}, "tiny")
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend, plot = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.x0 >= plot.x1 and legend.x1 <= fig.bbox.x1  # beside the plot, and inside the image
