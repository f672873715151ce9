"""The leaderboard's history figure: a reader can follow one team.

Up to 20 teams each get their own colour and line style (and a legend entry);
a larger class shows its top 10 in colour and the others in light grey. The PNG
is deterministic, without a Software stamp, and stays small.
"""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from grader.leaderboard.figures import OTHER_COLOUR, TOP_K, history_png, team_styles

START = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def histories(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(2, 8))
        times = sorted(START + timedelta(hours=float(h)) for h in rng.uniform(0, 24 * 10, k))
        scores = [float(v) for v in np.clip(rng.normal(0.85, 0.04, k), 0, 1)]
        out.append((times, scores, int(np.argmax(scores))))
    return out


def colours(png: bytes) -> dict:
    """``{(r, g, b): pixels}`` of a PNG."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    values, counts = np.unique(pixels, axis=0, return_counts=True)
    return {tuple(int(x) for x in v): int(c) for v, c in zip(values, counts)}


def rgb(colour) -> tuple:
    from matplotlib.colors import to_rgb

    return tuple(int(round(255 * c)) for c in to_rgb(colour))


def test_twenty_teams_get_twenty_distinct_colour_and_style_pairs():
    styles = team_styles(20)
    assert len(set(styles)) == 20 and len({c for c, _ in styles}) == 10 and len({s for _, s in styles}) == 2


@pytest.mark.parametrize("n", [12, 20])
def test_each_team_has_its_own_colour_up_to_twenty(n):
    png = history_png(histories(n), "Dice (public cases)", [f"team-{i}" for i in range(n)])
    drawn = colours(png)
    palette = {rgb(c) for c, _ in team_styles(n)}
    assert all(drawn.get(c, 0) > 40 for c in palette)  # every team's colour is drawn (lines, stars, legend)
    assert drawn.get(rgb(OTHER_COLOUR), 0) < 40  # nobody is greyed out (a few anti-aliased pixels at most)


def test_a_large_class_shows_its_top_teams_in_colour_and_the_rest_in_grey():
    data = histories(60)
    png = history_png(data, "Dice (public cases)", [f"team-{i}" for i in range(60)])
    drawn = colours(png)
    assert drawn.get(rgb(OTHER_COLOUR), 0) > 1000  # fifty teams in grey
    assert all(drawn.get(rgb(c), 0) > 40 for c, _ in team_styles(TOP_K))


def test_the_png_is_deterministic_unstamped_and_small():
    data, labels = histories(40), [f"$\\frac{{ team {i}" for i in range(40)]  # TeX-like names are text
    first = history_png(data, "Dice", labels)
    assert first == history_png(data, "Dice", labels)
    image = Image.open(io.BytesIO(first))
    assert "Software" not in image.info and image.format == "PNG"
    assert len(first) < 250_000
    # Without names (an older caller) the figure is drawn without a legend.
    assert history_png(data, "Dice")[:8] == b"\x89PNG\r\n\x1a\n"
    assert history_png([([], [], None)], "Dice", ["nobody"])[:4] == b"\x89PNG"
