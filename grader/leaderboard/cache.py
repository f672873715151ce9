"""The score cache: each submission file is validated and scored once, ever.

One JSON file, ``<cache dir>/scores.json``, maps a key to what scoring the file
gave: its status, its errors, and its per-case counts ``tp``, ``fp``, ``fn``
(every score, bootstrap and test is computed from these). The key is::

    sha256(file bytes) : sha256(truth file bytes) : SCORER_VERSION

so a renamed or re-uploaded file is not scored again, a new truth or a new
scorer scores everything again, and a rerun after new submissions scores only
the new files. The counts include the private cases: the cache must live
outside the published site (the leaderboard refuses a cache inside it).
"""
from __future__ import annotations

import json
from pathlib import Path

from plumbing.atomic import write_text

#: Bump when validation or the counts change meaning: every cached score is then recomputed.
SCORER_VERSION = "2"  # 2: HDF5 chunk and case-id size limits

CACHE_FILE = "scores.json"
_FORMAT = 1


def cache_key(file_sha256: str, truth_sha256: str, version: str = SCORER_VERSION) -> str:
    """The cache key of one submission file against one truth."""
    return f"{file_sha256}:{truth_sha256}:{version}"


class ScoreCache:
    """A dict of scoring records, read from and saved to ``directory/scores.json``.

    An unreadable or foreign cache file is ignored (and replaced on :meth:`save`):
    the cache only ever saves work, it never decides a score.

    Parameters
    ----------
    directory : path-like
    """

    def __init__(self, directory):
        self.path = Path(directory) / CACHE_FILE
        self.entries: dict = {}
        self.ignored_reason = None
        if self.path.is_file():
            try:
                body = json.loads(self.path.read_text(encoding="utf-8"))
                if body.get("format") != _FORMAT or not isinstance(body.get("entries"), dict):
                    raise ValueError("unknown format")
                self.entries = body["entries"]
            except (OSError, ValueError, AttributeError) as exc:
                self.ignored_reason = f"score cache {self.path} ignored ({exc}); rebuilt"
        self._dirty = False

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str, n_cases: int):
        """The record for ``key``, or None when absent or not for ``n_cases`` cases."""
        record = self.entries.get(key)
        if not isinstance(record, dict) or record.get("status") not in ("scored", "invalid"):
            return None
        if record["status"] == "scored" and any(len(record.get(k, ())) != n_cases for k in ("tp", "fp", "fn")):
            return None
        return record

    def put(self, key: str, record: dict) -> None:
        self.entries[key] = record
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (sorted keys: same content, same bytes)."""
        if not self._dirty and self.ignored_reason is None:
            return
        body = {"format": _FORMAT, "scorer_version": SCORER_VERSION, "entries": self.entries}
        write_text(self.path, json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n")
        self._dirty = False
