"""Recognise a downloaded BraTS release by its folder and file naming.

Four naming schemes are known (:data:`SCHEMES`); :func:`find_source` walks a
directory, finds every case of one scheme and says which files each case has.
Nothing is read here but names (and the Decathlon's ``dataset.json``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from data_spec.constants import MODALITIES
from data_spec.errors import LayoutError, MissingFileError

#: The files a case needs: the kit's four modalities and the label map.
SEG = "seg"
CASE_KEYS = MODALITIES + (SEG,)

_NIFTI = re.compile(r"\.nii(\.gz)?$")
_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".7z")


@dataclass(frozen=True)
class Scheme:
    """One naming scheme of a BraTS release.

    Attributes
    ----------
    kind : str
        Short stable name (``brats2018``, ``brats2021``, ``brats2023``, ``msd``).
    title : str
        What a user calls the release.
    pattern : str
        The naming, as shown to the user.
    tags : dict
        Kit key (``t1``, ``t1ce``, ``t2``, ``flair``, ``seg``) -> file name tag.
    separator : str
        Between the case name and the tag in a file name.
    case_name : str
        Regular expression a case folder's name matches.
    labels : tuple of int
        The non-zero labels of the release (all are merged into whole tumour).
    """

    kind: str
    title: str
    pattern: str
    tags: dict = field(hash=False)
    separator: str = "_"
    case_name: str = r".+"
    labels: tuple = ()

    def describe(self) -> str:
        return f"{self.title}: {self.pattern}"


_OLD_TAGS = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", SEG: "seg"}

BRATS2023 = Scheme(
    "brats2023",
    "BraTS 2023+ (glioma)",
    "BraTS-GLI-XXXXX-XXX/BraTS-GLI-XXXXX-XXX-{t1n,t1c,t2w,t2f,seg}.nii.gz (labels 1, 2, 3)",
    {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", SEG: "seg"},
    separator="-",
    # GLI, and the cohorts that share its naming (SSA, PED, MEN, MET).
    case_name=r"BraTS-[A-Z]{2,4}-\d{5}-\d{3}",
    labels=(1, 2, 3),
)
BRATS2021 = Scheme(
    "brats2021",
    "BraTS 2021",
    "BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz (labels 1, 2, 4)",
    _OLD_TAGS,
    case_name=r"BraTS2021_\d{5}",
    labels=(1, 2, 4),
)
BRATS2018 = Scheme(
    "brats2018",
    "BraTS 2018-2020",
    "<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz, e.g. HGG/Brats18_2013_2_1/ (labels 1, 2, 4)",
    _OLD_TAGS,
    labels=(1, 2, 4),
)
MSD = Scheme(
    "msd",
    "Medical Segmentation Decathlon Task01_BrainTumour",
    "imagesTr/<case>.nii.gz (4D: FLAIR, T1w, T1gd, T2w) with labelsTr/<case>.nii.gz (labels 1, 2, 3)",
    {},
    labels=(1, 2, 3),
)
#: Every recognised scheme; folder schemes are tried in this order (2021 before its 2018 look-alike).
SCHEMES = (BRATS2023, BRATS2021, BRATS2018, MSD)
_FOLDER_SCHEMES = (BRATS2023, BRATS2021, BRATS2018)

#: The Decathlon's channel order when ``dataset.json`` does not say otherwise.
MSD_CHANNELS = ("flair", "t1", "t1ce", "t2")
# Channel names of the Decathlon's dataset.json -> kit modality.
_MSD_NAMES = {"flair": "flair", "t1w": "t1", "t1": "t1", "t1gd": "t1ce", "t1ce": "t1ce", "t2w": "t2", "t2": "t2"}


@dataclass(frozen=True)
class Case:
    """One patient of a release: where each of its files is.

    Attributes
    ----------
    case_id : str
        The source's name for the patient (folder name, or MSD file stem).
    files : dict
        Kit key -> Path; a key is absent when its file is missing.
    channels : dict or None
        For 4D images (MSD): kit modality -> channel index.
    """

    case_id: str
    files: dict
    channels: Optional[dict] = None

    def missing(self) -> list:
        """Kit keys without a file, in the kit's order."""
        return [key for key in CASE_KEYS if key not in self.files]


@dataclass
class Source:
    """A recognised release: its scheme and its cases, sorted by case id."""

    root: Path
    scheme: Scheme
    cases: list


def _case_files(folder: str, filenames, scheme: Scheme) -> dict:
    """Kit key -> file name for the files of ``folder`` named after it in ``scheme``."""
    if not re.fullmatch(scheme.case_name, folder):
        return {}
    by_tag = {tag: key for key, tag in scheme.tags.items()}
    prefix = folder + scheme.separator
    found = {}
    # Sorted: with both x.nii and x.nii.gz present, the choice is the same everywhere.
    for name in sorted(filenames):
        if not name.startswith(prefix):
            continue
        tag = _NIFTI.split(name[len(prefix):])[0]
        if tag in by_tag and _NIFTI.search(name) and by_tag[tag] not in found:
            found[by_tag[tag]] = name
    return found


def _is_visible_nifti(name: str) -> bool:
    # The Decathlon's archive ships macOS "._BRATS_001.nii.gz" resource forks: not images.
    return not name.startswith(".") and bool(_NIFTI.search(name))


def _msd_channels(root: Path) -> dict:
    """Kit modality -> channel index, from ``dataset.json`` when present."""
    meta = root / "dataset.json"
    if not meta.is_file():
        return {m: i for i, m in enumerate(MSD_CHANNELS)}
    try:
        names = json.loads(meta.read_text())["modality"]
        mapping = {_MSD_NAMES[str(name).lower()]: int(index) for index, name in names.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LayoutError(
            f"cannot read the channel order ({type(exc).__name__}: {exc})",
            path=meta,
            expected='"modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}',
        ) from None
    if sorted(mapping) != sorted(MODALITIES):
        raise LayoutError(
            f"channels {dict(sorted(names.items()))} do not name the four modalities",
            path=meta,
            expected="FLAIR, T1w, T1gd and T2w",
        )
    return mapping


def _msd_cases(root: Path) -> list:
    images, labels = root / "imagesTr", root / "labelsTr"
    channels = _msd_channels(root)
    label_names = set(os.listdir(labels)) if labels.is_dir() else set()
    cases = []
    for name in sorted(os.listdir(images)):
        if not _is_visible_nifti(name):
            continue
        files = {m: images / name for m in MODALITIES}
        if name in label_names:
            files[SEG] = labels / name
        cases.append(Case(_NIFTI.split(name)[0], files, channels))
    return cases


def _no_source_error(root: Path) -> LayoutError:
    expected = "; ".join(s.describe() for s in SCHEMES)
    if root.is_file():
        hint = "extract the archive first" if root.name.lower().endswith(_ARCHIVES) else "pass the release's folder"
        return LayoutError("this is a file, not a BraTS release folder", path=root, expected=expected, hint=hint)
    entries = sorted(p for p in os.listdir(root) if not p.startswith("."))
    seen = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "") if entries else "nothing"
    return LayoutError(
        f"no BraTS case found here (it holds {seen})",
        path=root,
        expected=f"one of the recognised releases: {expected}",
        hint="pass the folder that holds the case folders (or imagesTr/ and labelsTr/); "
        "archives must be extracted first",
    )


def find_source(path) -> Source:
    """Recognise the release under ``path`` and list its cases.

    Parameters
    ----------
    path : path-like
        The release folder, as downloaded and extracted: the folder of case
        folders (searched recursively, so ``HGG/`` and ``LGG/`` sub-folders
        are found), or the Decathlon's ``Task01_BrainTumour`` folder (or one
        that contains it).

    Returns
    -------
    Source
        Its scheme and cases, sorted by case id. A case folder is recognised
        from one file named after it; the files it lacks are listed by
        :meth:`Case.missing`, so the build can report the patient.

    Raises
    ------
    MissingFileError
        ``path`` does not exist.
    LayoutError
        No recognised case, cases of several releases, or two cases with the
        same id.
    """
    root = Path(path)
    if not root.exists():
        raise MissingFileError("no such file or directory", path=root)
    root = root.resolve()
    if not root.is_dir():
        raise _no_source_error(root)
    found = {}  # scheme -> list of (Case, folder)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        if "imagesTr" in dirnames:
            found.setdefault(MSD, []).extend((c, here) for c in _msd_cases(here))
            dirnames[:] = []
            continue
        for scheme in _FOLDER_SCHEMES:
            files = _case_files(here.name, filenames, scheme)
            if files:
                case = Case(here.name, {key: here / name for key, name in files.items()})
                found.setdefault(scheme, []).append((case, here))
                dirnames[:] = []  # a case folder holds no other case
                break
    if not found:
        raise _no_source_error(root)
    if len(found) > 1:
        parts = [f"{s.title} ({len(c)} cases, e.g. {c[0][1]})" for s, c in found.items()]
        raise LayoutError(
            "cases of several releases found: " + "; ".join(parts),
            path=root,
            hint="pass the folder of one release",
        )
    (scheme, entries), = found.items()
    seen = {}
    for case, folder in entries:
        if case.case_id in seen:
            raise LayoutError(
                f"case {case.case_id} appears twice: in {seen[case.case_id]} and in {folder}",
                path=root,
                hint="pass the folder of one release (training data only)",
            )
        seen[case.case_id] = folder
    return Source(root, scheme, sorted((c for c, _ in entries), key=lambda c: c.case_id))
