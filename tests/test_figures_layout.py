"""The figures' layout, checked mechanically on the rendered figures: tick labels of the time axis,
the distribution's range, labels that do not overlap each other or what they describe."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from matplotlib.text import Text

from grader.leaderboard.figures import distribution_figure, history_figure

START = datetime(2026, 11, 2, 10, 37, 10, tzinfo=timezone.utc)


def drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def histories(span: timedelta, n: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        times = sorted(START + span * float(f) for f in rng.uniform(0, 1, 4))
        scores = [float(v) for v in rng.uniform(0.8, 0.95, 4)]
        out.append((times, scores, int(np.argmax(scores))))
    return out


@pytest.mark.parametrize("span", [timedelta(seconds=50), timedelta(minutes=40), timedelta(hours=9),
                                  timedelta(days=3), timedelta(days=12), timedelta(days=200), timedelta(days=1500)])
def test_history_time_ticks_say_what_they_are_and_nothing_collides_with_the_axis_title(span):
    fig = history_figure(histories(span), "Dice (public cases)", ["a", "b", "c", "d"])
    renderer = drawn(fig)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticklabels() if t.get_text()]
    assert len(ticks) >= 2
    for t in ticks:
        text = t.get_text()
        # "10:38", "10:37:20", "03 Nov", "Nov 2026" or a year: never a bare "20" (a second? a day?).
        assert re.fullmatch(r"\d\d:\d\d(:\d\d)?|\d\d [A-Z][a-z]{2}|[A-Z][a-z]{2} \d{4}|\d{4}", text), text
    assert ax.xaxis.get_offset_text().get_text() == ""
    title = ax.xaxis.label
    assert "2026" in title.get_text()  # the dates go in the title
    box = title.get_window_extent(renderer)
    for t in ticks + [ax.xaxis.get_offset_text()] + ([ax.get_legend()] if ax.get_legend() else []):
        if t.get_visible() and (not hasattr(t, "get_text") or t.get_text()):
            assert not overlap(t.get_window_extent(renderer), box)


def test_the_distribution_zooms_to_the_datas_range():
    scores = list(np.random.default_rng(1).normal(0.94, 0.004, 50))
    ax = distribution_figure(scores, scores[:6], [], "Dice").axes[0]
    lo, hi = ax.get_xlim()
    assert min(scores) - 0.02 <= lo < min(scores) and max(scores) < hi <= max(scores) + 0.02
    patches = [p for p in ax.patches if p.get_height() > 0]
    assert min(p.get_x() for p in patches) >= lo and max(p.get_x() + p.get_width() for p in patches) <= hi
    with_baseline = distribution_figure(scores, scores[:6], [("flair-threshold", 0.62)], "Dice").axes[0]
    assert with_baseline.get_xlim()[0] < 0.62 and with_baseline.get_xlim()[1] <= 1.0


@pytest.mark.parametrize("baselines", [
    [("flair-threshold", 0.62), ("svm-pixel", 0.78), ("mlp-pixel", 0.785), ("mlp-window3", 0.79),
     ("kmeans-2", 0.70), ("rf-window5", 0.935)],
    [(f"same-score-{i}", 0.9) for i in range(8)],
    [("at-the-top-with-a-long-name-here", 1.0), ("at-zero", 0.0), ("$\\frac{", 0.5)],
])
def test_baseline_labels_do_not_overlap_each_other_the_axes_or_the_legend(baselines):
    scores = list(np.random.default_rng(2).normal(0.9, 0.01, 30))
    fig = distribution_figure(scores, scores[:5], baselines, "Dice")
    renderer = drawn(fig)
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid() == "baseline-label"]
    assert len(labels) == len(baselines)
    # The text's own box (an annotation's extent includes its leader line)...
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    # ...and the leaders rise from the axes to the labels' feet, below every label.
    lowest = min(box.y0 for box in boxes)
    for t in labels:
        leader = t.arrow_patch.get_window_extent(renderer)
        assert leader.y1 <= lowest + 1 and leader.y0 >= ax.get_window_extent(renderer).y1 - 1
    frame = ax.get_window_extent(renderer)
    legend = fig.legends[0].get_window_extent(renderer)
    page = fig.bbox
    for i, box in enumerate(boxes):
        assert box.y0 >= frame.y1 and not overlap(box, legend)  # above the plot, below the legend
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1
        for other in boxes[i + 1:]:
            assert not overlap(box, other)


@pytest.mark.parametrize("with_inputs", [True, False])
def test_the_worst_slices_labels_stay_off_the_images(with_inputs):
    from conftest import make_slices
    from grader.metrics import dice_per_slice
    from grader.report import _montage_figure

    x, y = make_slices(6, seed=3)
    pred = np.roll(y, 6, axis=2)
    tp, fp, fn = ((y & pred).sum((1, 2)), ((1 - y) & pred).sum((1, 2)), (y & (1 - pred)).sum((1, 2)))
    ids = ["test-000-with-an-unusually-long-case-identifier-$x$"] + [f"test-{i:03d}" for i in range(1, 6)]
    fig = _montage_figure([0, 3, 5], case_id=ids, dice=dice_per_slice(tp, fp, fn), tp=tp, fp=fp, fn=fn, y_true=y,
                          y_pred=pred, x=x if with_inputs else None, index=np.arange(6),
                          note=None if with_inputs else "no inputs: the test inputs were not found beside the truth")
    renderer = drawn(fig)
    images = [ax.get_window_extent(renderer) for ax in fig.axes if ax.images]
    assert len(images) == 3 * (7 if with_inputs else 3)
    texts = [t for t in fig.texts if t.get_text()]
    texts += [fig._suptitle] if fig._suptitle not in texts else []
    assert sum(t.get_text().startswith("test-") and "  Dice " in t.get_text() for t in texts) == 3
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, box in enumerate(boxes):
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
        assert not any(overlap(box, image) for image in images), texts[i].get_text()
        assert not any(overlap(box, other) for other in boxes[i + 1:]), texts[i].get_text()
