"""One patient's volumes: read, orient, normalise, and cut the chosen axial slice.

Orientation
    Every volume is turned, from its NIfTI affine and with nibabel's orientation
    helpers, so that its array axes run (P, L, S): rows go from anterior (row 0)
    to posterior, columns from the patient's right (column 0) to left, slices
    from inferior to superior. ``imshow(x[..., m])`` then shows the brain nose
    up with the patient's right on the image's left (the radiological view of
    the BraTS viewers). BraTS files carry an (L, P, S) affine, so their slice is
    the transpose of ``get_fdata()[:, :, k]``; the recorded slice index is the
    index along the file's own axial axis.

Brain
    BraTS volumes are skull-stripped with the background exactly 0: a voxel is
    brain when any of the four modalities is non-zero there.

Normalisation (the course's)
    Per patient and modality, z-score over the brain voxels of the whole 3D
    volume (mean and standard deviation in float64); in the chosen slice,
    pixels outside the brain are set to the minimum of the slice's normalised
    brain pixels for that modality, so background is exactly the slice's
    minimum.
"""
from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from data_spec.constants import MODALITIES, SLICE_SHAPE, X_DTYPE, Y_DTYPE
from .sources import SEG, Case

#: Array axes of every oriented volume.
AXCODES = ("P", "L", "S")
ORIENTATION = (
    "rows anterior to posterior, columns patient's right to left (radiological view), "
    "from each file's NIfTI affine"
)
BRAIN_RULE = "brain = voxels where any modality is non-zero (skull-stripped BraTS background is 0)"
SLICE_RULES = ("largest", "random")
#: A patient with more axial slices is skipped before any voxel is read: BraTS has 155, and one
#: patient's four float32 volumes of 240 x 240 x 512 already take 450 MB.
MAX_AXIAL_SLICES = 512


class UnusableCase(Exception):
    """A patient that cannot be used; ``str()`` is the reason shown to the user."""


@dataclass
class PatientSlice:
    """What is kept of one patient: the slice, the mask, and its provenance."""

    x: np.ndarray  # (240, 240, 4) float32
    y: np.ndarray  # (240, 240) uint8
    record: dict


def _io(what: str, path, call):
    """Run a nibabel call; any failure of an unreadable file becomes an UnusableCase naming it."""
    try:
        return call()
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on a damaged file
        raise UnusableCase(f"unreadable {what} file {path.name} ({type(exc).__name__}: {exc})") from None


class _Image:
    """A NIfTI image, its orientation change to :data:`AXCODES` and the resulting shape."""

    def __init__(self, key: str, path):
        self.key, self.path = key, path
        self.img = _io(key, path, lambda: nib.load(path))
        if self.img.ndim < 3:
            raise UnusableCase(f"shape mismatch: {path.name} is {self.img.ndim}D, not a volume")
        try:
            self.ornt = ornt_transform(io_orientation(self.img.affine), axcodes2ornt(AXCODES))
        except ValueError as exc:
            raise UnusableCase(f"{path.name} has no usable orientation in its header ({exc})") from None
        shape = [0, 0, 0]
        for axis, (new_axis, _) in enumerate(self.ornt):
            shape[int(new_axis)] = self.img.shape[axis]
        self.shape = tuple(shape) + tuple(self.img.shape[3:])

    def source_index(self, k: int) -> tuple:
        """(axis, index) in the file's own voxel array of oriented axial slice ``k``."""
        axis = int(np.flatnonzero(self.ornt[:, 0] == 2)[0])
        flipped = self.ornt[axis, 1] < 0
        return axis, int(self.img.shape[axis] - 1 - k if flipped else k)

    def oriented(self, array: np.ndarray) -> np.ndarray:
        return apply_orientation(array, self.ornt)

    def floats(self) -> np.ndarray:
        # caching="unchanged": the image keeps no copy, so the volume is freed with the array.
        data = _io(self.key, self.path, lambda: self.img.get_fdata(dtype=np.float32, caching="unchanged"))
        return self.oriented(data)

    def labels(self) -> np.ndarray:
        return self.oriented(_io(self.key, self.path, lambda: np.asanyarray(self.img.dataobj)))


def _open_images(case: Case) -> dict:
    """Kit key -> _Image, with every shape checked before any voxel is read."""
    missing = case.missing()
    if missing:
        raise UnusableCase(f"missing {', '.join(missing)}")
    images, by_path = {}, {}
    for key in (SEG,) + MODALITIES:
        path = case.files[key]
        images[key] = by_path.get(path) or _Image(key, path)
        by_path[path] = images[key]
    want_channels = case.channels is not None
    for key, image in images.items():
        four_d = want_channels and key != SEG
        expected_ndim = 4 if four_d else 3
        if len(image.shape) != expected_ndim or (four_d and image.shape[3] <= max(case.channels.values())):
            raise UnusableCase(
                f"shape mismatch: {image.path.name} has shape {image.img.shape}, expected a "
                + ("4D image with one channel per modality" if four_d else "3D volume")
            )
    shapes = {key: image.shape[:3] for key, image in images.items()}
    if len(set(shapes.values())) > 1:
        detail = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise UnusableCase(f"shape mismatch between files: {detail}")
    if shapes[SEG][:2] != SLICE_SHAPE:
        raise UnusableCase(
            f"shape mismatch: axial slices are {shapes[SEG][0]}x{shapes[SEG][1]}, "
            f"expected {SLICE_SHAPE[0]}x{SLICE_SHAPE[1]} (BraTS space, 1 mm)"
        )
    if shapes[SEG][2] > MAX_AXIAL_SLICES:
        raise UnusableCase(
            f"too large: {shapes[SEG][2]} axial slices, at most {MAX_AXIAL_SLICES} are read "
            "(BraTS volumes have 155)"
        )
    return images


def label_values(seg: np.ndarray, labels=None, release: str = "the release") -> list:
    """The distinct non-zero labels of a label map, refusing one that is not a label map.

    Raises UnusableCase when it holds NaN or infinite voxels, fractions (an
    image saved as ``_seg``), or, when ``labels`` is given, a value outside
    ``{0} | labels``.
    """
    if seg.dtype.kind == "f":
        finite = np.isfinite(seg)
        if not finite.all():
            raise UnusableCase(f"the label map holds {int(finite.size - finite.sum())} NaN or infinite voxels")
        if (seg != np.round(seg)).any():
            raise UnusableCase("the label map holds fractional values: not a label map (an image saved as _seg?)")
    elif seg.dtype.kind not in "biu":
        raise UnusableCase(f"the label map has dtype {seg.dtype}, not integer labels")
    if seg.dtype.kind in "iu" and seg.size and seg.min() >= 0 and seg.max() < 1 << 16:
        values = np.flatnonzero(np.bincount(seg.reshape(-1)))  # much faster than np.unique on 9M voxels
    else:
        values = np.unique(seg)
    found = sorted(int(v) for v in values if v != 0)
    if labels is not None:
        outside = [v for v in found if v not in set(labels)]
        if outside:
            shown = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
            raise UnusableCase(
                f"labels {shown} are outside {release}'s label set {list(labels)}: not a label map of this release"
            )
    return found


def tumour_area(tumour: np.ndarray) -> np.ndarray:
    """Tumour pixels of each axial slice of an oriented (P, L, S) mask."""
    return tumour.sum(axis=(0, 1))


def choose_slice(area: np.ndarray, rule: str, rng: np.random.Generator) -> int:
    """The axial slice to keep: the largest tumour area, or a random slice with tumour.

    Ties for the largest area go to the lowest index. Raises UnusableCase when
    no slice has tumour.
    """
    if rule not in SLICE_RULES:
        raise ValueError(f"slice rule must be one of {SLICE_RULES}, got {rule!r}")
    with_tumour = np.flatnonzero(area)
    if not len(with_tumour):
        raise UnusableCase("no tumour voxel in the label map")
    if rule == "largest":
        return int(np.argmax(area))
    return int(rng.choice(with_tumour))


def brain_stats(volume: np.ndarray, brain: np.ndarray) -> tuple:
    """Mean and standard deviation (float64) of ``volume`` over the brain voxels."""
    values = volume[brain]
    return float(values.mean(dtype=np.float64)), float(values.std(dtype=np.float64))


def normalised_slice(volume: np.ndarray, k: int, brain: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Axial slice ``k`` z-scored with the volume's brain statistics, background at the slice minimum."""
    z = (volume[:, :, k].astype(np.float64) - mean) / std
    inside = brain[:, :, k]
    z[~inside] = z[inside].min()
    return z.astype(X_DTYPE)


def extract_patient(case: Case, rule: str, rng: np.random.Generator, *, labels=None,
                    release: str = "the release") -> PatientSlice:
    """Read one patient, choose its slice, and return the normalised slice and whole-tumour mask.

    At most one patient's volumes are in memory: the label map, then the four
    modalities (float32); they are released when this function returns.

    Parameters
    ----------
    case : Case
    rule : {"largest", "random"}
    rng : numpy.random.Generator
    labels : tuple of int, optional
        The release's non-zero labels: a label map holding another is refused.
    release : str
        The release's name, for that message.

    Raises
    ------
    UnusableCase
        Missing file, unreadable file, shape mismatch, too many slices, a
        label map that is not one, no tumour, or a modality that is constant
        over the brain.
    """
    images = _open_images(case)
    seg = images[SEG].labels()
    labels = label_values(seg, labels, release)
    tumour = seg != 0  # whole tumour: every non-zero label
    del seg
    k = choose_slice(tumour_area(tumour), rule, rng)
    y = tumour[:, :, k].astype(Y_DTYPE)
    del tumour

    if case.channels is None:
        volumes = {m: images[m].floats() for m in MODALITIES}
    else:
        stack = images[MODALITIES[0]].floats()  # one read: the four channels share one 4D file
        volumes = {m: stack[..., case.channels[m]] for m in MODALITIES}
    brain = np.zeros(volumes[MODALITIES[0]].shape, dtype=bool)
    for m in MODALITIES:
        brain |= volumes[m] != 0
    if not brain[:, :, k].any():
        raise UnusableCase(f"the chosen slice {k} holds no brain voxel")

    x = np.empty(SLICE_SHAPE + (len(MODALITIES),), dtype=X_DTYPE)
    means, stds = {}, {}
    for c, m in enumerate(MODALITIES):
        mean, std = brain_stats(volumes[m], brain)
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise UnusableCase(f"{m} is constant or not finite over the brain (mean {mean}, std {std})")
        x[..., c] = normalised_slice(volumes[m], k, brain, mean, std)
        means[m], stds[m] = mean, std
    axis, index = images[SEG].source_index(k)
    record = {
        "source_case": case.case_id,
        "slice_index": index,
        "slice_axis": axis,
        "n_axial_slices": int(images[SEG].shape[2]),
        "tumour_pixels": int(y.sum()),
        "labels": labels,
        "brain_mean": means,
        "brain_std": stds,
    }
    return PatientSlice(x, y, record)
