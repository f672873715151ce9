"""The ranking score a competition was built with, as its private manifest records it.

``brats-kit data synth/prepare --ranking SCORE`` writes ``"ranking": SCORE`` into
``private/manifest.json``; the offline leaderboard ranks by it unless told otherwise.
The names a board can rank by, and their check, live with the ranking
(``grader.leaderboard.ranking``): this module only reads and writes the record.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .constants import MANIFEST_FILE

#: The manifest's key.
RANKING_KEY = "ranking"


def recorded_ranking(truth_path) -> Optional[str]:
    """The ranking score named by the manifest beside a truth file (``private/manifest.json``), or None.

    None when there is no manifest (a course's ``test_data_y.dat`` alone), it is not
    JSON, or it names no ranking: the course's default applies then.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "manifest.json").write_text('{"ranking": "lesion_hd95"}')
    >>> recorded_ranking(d / "test_truth.h5"), recorded_ranking(d / "nowhere" / "test_truth.h5")
    ('lesion_hd95', None)
    """
    path = Path(truth_path).parent / MANIFEST_FILE
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = body.get(RANKING_KEY) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None
