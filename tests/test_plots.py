"""The course's figures: they build, save as identical PNGs, and refuse bad case indices."""
from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
from matplotlib.figure import Figure

from conftest import make_slices
from data_spec import KitError, open_split
from starter import foreground_mask
from starter.plots import (
    course_figure,
    foreground_histograms,
    label_hist2d,
    sample_pixels,
    save_course_figure,
    save_figure,
    save_overview_figures,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # figures are pyplot's when another test imported it
        pyplot.close("all")


@pytest.fixture(scope="module")
def slices():
    return make_slices(5, seed=3)


def _images(fig):
    return [ax for ax in fig.axes if ax.get_images()]


def test_course_figure_layout(slices):
    x, y = slices
    fig = course_figure(x, y_true=y, y_pred=1 - y, cases=[0, 3], case_ids=[f"id{i}" for i in range(5)])
    assert isinstance(fig, Figure)
    assert len(_images(fig)) == 2 * 6
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles == ["T1", "T1ce", "T2", "FLAIR", "prediction", "truth"]
    assert fig.axes[6].get_ylabel() == "id3"
    assert len(_images(course_figure(x))) == 4 * 4  # default: first four cases, inputs only


def test_course_figure_bad_case(slices):
    x, _ = slices
    with pytest.raises(KitError, match="0 to 4"):
        course_figure(x, cases=[5])
    with pytest.raises(KitError):
        course_figure(x, cases=[-1])


def test_histograms_from_images_and_vectors(slices):
    x, y = slices
    values, labels = sample_pixels(x, y, max_pixels=5000, seed=0)
    assert values.shape == (5000, 4) and labels.shape == (5000,)
    for fig in (foreground_histograms(x, y, bins=20), foreground_histograms(values, labels), foreground_histograms(x)):
        assert len(fig.axes) == 4 and all(ax.patches for ax in fig.axes)
    fig = label_hist2d(values, labels, pairs=[("t2", "flair"), (0, 1)], bins=30)
    assert len(_images(fig)) == 2
    assert fig.axes[0].get_xlabel() == "T2" and fig.axes[0].get_ylabel() == "FLAIR"
    assert len(_images(label_hist2d(x, y))) == 6  # all pairs by default
    with pytest.raises(ValueError):
        label_hist2d(values, labels, pairs=[("t2", "dwi")])


def test_pyplot_users_get_pyplot_figures(slices, tmp_path):
    import matplotlib.pyplot as plt

    x, y = slices
    fig = course_figure(x, y_true=y, cases=[0])
    assert plt.fignum_exists(fig.number)  # shown by a notebook like any pyplot figure
    other = save_figure(course_figure(x, y_true=y, cases=[0]), tmp_path / "other.png")
    assert plt.get_fignums() == [fig.number]  # saving closed the other one
    save_figure(fig, tmp_path / "fig.png")
    assert plt.get_fignums() == []
    assert other.read_bytes() == (tmp_path / "fig.png").read_bytes()


def test_png_is_deterministic(slices, tmp_path):
    x, y = slices
    a = save_figure(course_figure(x, y_true=y, cases=[1]), tmp_path / "a.png")
    b = save_figure(course_figure(x, y_true=y, cases=[1]), tmp_path / "b.png")
    data = a.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data == b.read_bytes()
    assert b"matplotlib" not in data  # no software version in the metadata
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".*tmp"))


def test_save_course_figure(competition, tmp_path):
    out = save_course_figure(competition, tmp_path / "show.png", cases=[0, 11])
    again = save_course_figure(competition, tmp_path / "again.png", cases=[0, 11])
    assert out.read_bytes() == again.read_bytes()
    # The test split: the instructor's private truth is found and drawn.
    test_png = save_course_figure(competition, tmp_path / "test.png", cases=[2], split="test")
    assert test_png.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(KitError, match="0 to 11"):
        save_course_figure(competition, tmp_path / "bad.png", cases=[12])
    with pytest.raises(KitError, match="0 to 5"):
        save_course_figure(competition, tmp_path / "bad.png", cases=[6], split="test")
    assert not (tmp_path / "bad.png").exists()


def test_save_overview_figures(competition, tmp_path):
    paths = save_overview_figures(competition, tmp_path / "figures")
    assert [p.name for p in paths] == ["course_figure.png", "foreground_histograms.png", "label_hist2d.png"]
    first = [p.read_bytes() for p in paths]
    assert all(d.startswith(PNG_SIGNATURE) for d in first)
    assert [p.read_bytes() for p in save_overview_figures(competition, tmp_path / "figures")] == first
    assert len(open_split(competition, "train")) == 12


def test_sample_pixels_is_the_seeded_sample_without_indexing_every_pixel():
    x, y = make_slices(40, seed=4)
    # The sample is a seeded uniform choice among the foreground pixels in reading order...
    index = np.argwhere(foreground_mask(x))
    chosen = index[np.sort(np.random.default_rng(7).choice(len(index), size=500, replace=False))]
    tracemalloc.start()
    try:
        values, labels = sample_pixels(x, y, max_pixels=500, seed=7)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(values, x[chosen[:, 0], chosen[:, 1], chosen[:, 2]])
    np.testing.assert_array_equal(labels, y[chosen[:, 0], chosen[:, 1], chosen[:, 2]])
    # ...drawn without an index row for every foreground pixel (24 bytes each, here ~20 MB).
    assert index.nbytes > 10_000_000 and peak < index.nbytes / 3, (peak, index.nbytes)
