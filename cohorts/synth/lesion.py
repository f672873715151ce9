"""Tumours and their mimics, defined in template space (world mm) and evaluated at any points.

A tumour is one or more foci. Each focus is a deformed ellipsoid with three
nested compartments, as BraTS labels them: peritumoural oedema (the outer
shell), the tumour core, and inside the core a necrotic centre (high-grade
tumours only; what remains of the core is then the enhancing rim). Boundaries
are made irregular by smooth random fields, the oedema reaches further along
white matter (finger-like oedema), its outer millimetres are fainter (the
infiltrative margin: see ``density``), and every compartment has a fuzzy border:
memberships are soft, the label is where the whole tumour's membership is at
least one half.

Mimics are healthy structures that look like tumour in some modality:
periventricular FLAIR hyperintensity, small white-matter hyperintensities,
bright spots on T1ce (vessels, the choroid plexus), and thin bright bands that
look like oedema pixel by pixel but not in context: the rim of
skull-stripping residue (meninges, unsuppressed surface fluid) along the
brain's edge, and the lining of the lateral ventricles' walls on FLAIR.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from scipy.special import expit, ndtr, ndtri

from .fields import SmoothField

#: Whole-tumour equivalent radius of the main focus (mm): log-normal, centred on the range's
#: geometric mean, with log standard deviation RADIUS_LOG_SD, truncated to the range. BraTS
#: whole-tumour volumes span about 10 to 250 ml (equivalent radii 13 to 39 mm) but are
#: unimodal: most lie within a factor 1.6 of a median near 100 ml (radius 29 mm), which a
#: log-uniform law (as flat at the extremes as in the middle) does not give. The course's
#: slices cut through the larger ones (11-12% of the foreground is tumour).
RADIUS_MM = (18.5, 41.5)
RADIUS_LOG_SD = 0.16
#: Irregularity of the foci's boundaries (relative to the radius; smooth random bumps).
BOUNDARY_AMPLITUDE = 0.16
#: Share of patients with a second focus.
MULTIFOCAL = 0.15
#: Mean number of white-matter hyperintensities per patient (Poisson).
WMH_COUNT = 5.0
#: Confluent white-matter lesions (plaques): oedema-like patches large enough to survive a
#: 5 x 5-cross opening. Mean number crossing the slice per patient (Poisson) and their radius
#: (mm, uniform). They are placed near the slice, away from the tumour. At most PLAQUE_MAX:
#: a slice full of plaques would make one patient swing a 10-slice validation set.
PLAQUE_COUNT = 1.8
PLAQUE_MAX = 3
PLAQUE_RADIUS_MM = (4.5, 9.0)


@dataclass
class Focus:
    """One tumour focus. Lengths in mm, ``core`` and ``necrosis`` relative (see :func:`draw_focus`)."""

    centre: np.ndarray
    shape: np.ndarray
    radius: float
    core: float
    necrosis: float
    core_shift: np.ndarray
    boundary: SmoothField = field(repr=False)
    wm_affinity: float
    border: float

    def memberships(self, q: np.ndarray, wm: np.ndarray, margin: float = 0.0):
        """Soft whole-tumour, core and necrosis memberships at world points ``q`` (n, 3).

        A fourth array is the oedema's density (0..1): it rises from 0 at the
        boundary to 1 about ``margin`` mm inside (the infiltrative margin).
        """
        out = [np.zeros(len(q), dtype=np.float32) for _ in range(4)]
        r = np.linalg.norm((q - self.centre) @ self.shape.T, axis=1)
        # Bumps are at most 0.5 and the white-matter term 0.25: beyond this radius every
        # membership is below expit(-7) ~ 1e-3, far under the noise. Skip those points.
        near = np.flatnonzero(r < 1.75 + 7 * self.border / self.radius)
        for o, v in zip(out, self._memberships(q[near], wm[near], r[near], margin)):
            o[near] = v
        return out

    def _memberships(self, q, wm, r, margin):
        bumps = np.clip(self.boundary(q), -0.5, 0.5)
        inside_mm = (1 - r + bumps[:, 0] + self.wm_affinity * (wm - 0.5)) * self.radius
        whole = expit(inside_mm / self.border)
        density = expit((inside_mm - margin) / 1.0) if margin > 0 else np.ones_like(whole)
        rc = np.linalg.norm((q - self.centre - self.core_shift) @ self.shape.T, axis=1) / self.core
        core_mm = self.radius * self.core
        core = expit((1 - rc + bumps[:, 1]) * (core_mm / (0.7 * self.border)))
        if self.necrosis > 0:
            necrosis = expit((1 - rc / self.necrosis + bumps[:, 2]) * (core_mm * self.necrosis / (0.7 * self.border)))
        else:
            necrosis = np.zeros_like(core)
        return whole, core, necrosis, density

    def summary(self) -> dict:
        return {
            "centre_mm": np.round(self.centre.astype(np.float64), 1).tolist(),
            "radius_mm": round(float(self.radius), 1),
            "core_fraction": round(float(self.core), 3),
            "necrosis_fraction": round(float(self.necrosis), 3),
            "border_mm": round(float(self.border), 2),
        }


def draw_focus(rng, centre, radius: float, high_grade: bool) -> Focus:
    """A random focus of whole-tumour radius ``radius`` (mm) at ``centre`` (world mm)."""
    axes = rng.uniform(0.75, 1.3, size=3)
    # Elongated, but of the drawn volume: ``radius`` is the equivalent radius (the axes'
    # product is 1; independent axes made the volume vary 5-fold at a given radius).
    axes /= np.prod(axes) ** (1 / 3)
    orient = Rotation.random(random_state=rng).as_matrix()
    shape = (np.diag(1.0 / (radius * axes)) @ orient.T).astype(np.float32)
    if high_grade:
        core = rng.uniform(0.4, 0.72)
        # One high-grade focus in ten enhances solidly, without a necrotic centre.
        necrosis = rng.uniform(0.3, 0.7) if rng.random() < 0.9 else 0.0
    else:
        core, necrosis = rng.uniform(0.45, 0.85), 0.0
    return Focus(
        centre=np.asarray(centre, dtype=np.float32),
        shape=shape,
        radius=float(radius),
        core=float(core),
        necrosis=float(necrosis),
        core_shift=(rng.normal(size=3) * 0.12 * radius).astype(np.float32),
        boundary=SmoothField(rng, n_out=3, n_modes=8, wavelength=(14.0, 45.0), amplitude=BOUNDARY_AMPLITUDE),
        wm_affinity=float(rng.uniform(0.1, 0.5)),
        border=float(rng.uniform(1.0, 3.0)),
    )


@dataclass
class Tumour:
    """The lesion of one patient: its foci, grade and mass effect."""

    foci: list
    high_grade: bool
    mass_effect: float
    texture: SmoothField = field(repr=False)

    def memberships(self, q: np.ndarray, wm: np.ndarray, margin: float = 0.0):
        """Union of the foci: soft (whole, core, necrosis), nested so that necrosis <= core <= whole,
        and the oedema's density (see :meth:`Focus.memberships`)."""
        whole = core = necrosis = density = None
        for focus in self.foci:
            w, c, n, d = focus.memberships(q, wm, margin)
            whole = w if whole is None else np.maximum(whole, w)
            core = c if core is None else np.maximum(core, c)
            necrosis = n if necrosis is None else np.maximum(necrosis, n)
            density = d if density is None else np.maximum(density, d)
        whole = np.maximum(whole, core)
        necrosis = np.minimum(necrosis, core)
        return whole, core, necrosis, density

    def displace(self, q: np.ndarray) -> np.ndarray:
        """Where the healthy tissue now at ``q`` came from: the tumour pushes it outwards."""
        focus = self.foci[0]
        d = q - focus.centre
        r2 = (d * d).sum(axis=1, keepdims=True)
        pull = self.mass_effect * np.exp(-r2 / (2 * (1.2 * focus.radius) ** 2))
        return (focus.centre + d * (1 - pull)).astype(np.float32)

    def summary(self) -> dict:
        return {
            "grade": "high" if self.high_grade else "low",
            "n_foci": len(self.foci),
            "mass_effect": round(float(self.mass_effect), 3),
            "foci": [f.summary() for f in self.foci],
        }


def _nearest(sites: np.ndarray, point) -> np.ndarray:
    return sites[np.argmin(((sites - point) ** 2).sum(axis=1))]


def truncated_lognormal(rng, bounds, log_sd: float) -> float:
    """One draw of a log-normal law centred on the geometric mean of ``bounds``, truncated to them.

    By inversion of the cumulative distribution: one uniform draw, whatever the bounds.
    """
    lo, hi = np.log(bounds)
    mid = (lo + hi) / 2
    cdf = ndtr((np.array([lo, hi]) - mid) / log_sd)
    return float(np.exp(mid + log_sd * ndtri(rng.uniform(*cdf))))


def draw_tumour(rng, anatomy) -> Tumour:
    """A random tumour: 3/4 high grade (necrosis, enhancing rim), some multifocal."""
    high_grade = bool(rng.random() < 0.75)
    centre = anatomy.tumour_sites[rng.integers(len(anatomy.tumour_sites))]
    radius = truncated_lognormal(rng, RADIUS_MM, RADIUS_LOG_SD)
    foci = [draw_focus(rng, centre, radius, high_grade)]
    if rng.random() < MULTIFOCAL:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        second = _nearest(anatomy.tumour_sites, centre + direction * radius * rng.uniform(1.3, 2.2))
        foci.append(draw_focus(rng, second, radius * rng.uniform(0.35, 0.7), high_grade))
    return Tumour(
        foci=foci,
        high_grade=high_grade,
        mass_effect=float(rng.uniform(0.1, 0.4)),
        # Many waves, so that the texture is blotchy rather than striped.
        texture=SmoothField(rng, n_out=4, n_modes=32, wavelength=(8.0, 30.0), amplitude=1.0),
    )


@dataclass
class Mimics:
    """Healthy look-alikes of one patient (world mm)."""

    halo: float
    wmh_centres: np.ndarray
    wmh_radii: np.ndarray
    vessel_starts: np.ndarray
    vessel_dirs: np.ndarray
    vessel_lengths: np.ndarray
    vessel_radii: np.ndarray
    choroid_centres: np.ndarray
    choroid_radii: np.ndarray
    rim: float
    rim_width: float
    lining: float
    patches: SmoothField = field(repr=False)
    plaque_centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    plaque_radii: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    plaque_shapes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3), np.float32))
    _tree: cKDTree = field(init=False, repr=False)
    _tree_radius: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        # Vessels as dense chains of points (0.4 mm apart) in a k-d tree: the
        # distance to the nearest one is the distance to the tube's axis.
        points, radius = [np.zeros((0, 3), np.float32)], [np.zeros(0, np.float32)]
        for a, u, n, r in zip(self.vessel_starts, self.vessel_dirs, self.vessel_lengths, self.vessel_radii):
            t = np.arange(0, n + 0.4, 0.4, dtype=np.float32)
            points.append(a + t[:, None] * u)
            radius.append(np.full(len(t), r, np.float32))
        self._tree = cKDTree(np.concatenate(points))
        self._tree_radius = np.concatenate(radius + [np.ones(1, np.float32)])

    def wmh(self, q: np.ndarray) -> np.ndarray:
        """White-matter hyperintensities: small soft blobs (0..1)."""
        return _blobs(q, self.wmh_centres, self.wmh_radii)

    def choroid(self, q: np.ndarray) -> np.ndarray:
        """Choroid plexus in the ventricles' atria (0..1), before masking by fluid."""
        return _blobs(q, self.choroid_centres, self.choroid_radii)

    def plaques(self, q: np.ndarray) -> np.ndarray:
        """Confluent white-matter lesions: flat-topped ellipsoids with a soft 1 mm border (0..1)."""
        out = np.zeros(len(q), dtype=np.float32)
        for centre, radius, shape in zip(self.plaque_centres, self.plaque_radii, self.plaque_shapes):
            r = np.linalg.norm((q - centre) @ shape.T, axis=1)
            near = np.flatnonzero(r < 1 + 8.0 / radius)
            out[near] = np.maximum(out[near], expit((1 - r[near]) * radius / 1.0))
        return out

    def vessels(self, q: np.ndarray) -> np.ndarray:
        """Thin tubes along random segments (0..1)."""
        if len(self.vessel_starts) == 0:
            return np.zeros(len(q), dtype=np.float32)
        dist, nearest = self._tree.query(q, distance_upper_bound=4 * float(self.vessel_radii.max()))
        return np.exp(-(dist**2) / (2 * self._tree_radius[nearest] ** 2)).astype(np.float32)

    def summary(self) -> dict:
        return {
            "periventricular_halo": round(float(self.halo), 3),
            "white_matter_hyperintensities": int(len(self.wmh_centres)),
            "vessels": int(len(self.vessel_starts)),
            "choroid_plexus_blobs": int(len(self.choroid_centres)),
            "edge_rim": round(float(self.rim), 3),
            "edge_rim_width_mm": round(float(self.rim_width), 2),
            "ventricle_lining": round(float(self.lining), 3),
            "plaques": int(len(self.plaque_centres)),
            "plaque_radii_mm": np.round(self.plaque_radii.astype(np.float64), 1).tolist(),
        }

    def bands(self, q: np.ndarray) -> np.ndarray:
        """Where the rim (column 0) and the lining (column 1) show: patchy, (n, 2) in 0..1."""
        return np.clip(self.patches(q) + 2.0, 0, 1)


def _blobs(q, centres, radii) -> np.ndarray:
    if len(centres) == 0:
        return np.zeros(len(q), dtype=np.float32)
    dist2 = (q * q).sum(axis=1, keepdims=True) - 2 * q @ centres.T + (centres * centres).sum(axis=1)
    return np.exp(-np.maximum(dist2, 0) / (2 * radii * radii)).max(axis=1).astype(np.float32)


def draw_mimics(rng, anatomy) -> Mimics:
    """Random mimics: their number and strength vary from patient to patient."""
    n_wmh = int(rng.poisson(WMH_COUNT))
    n_vessels = int(rng.integers(25, 60))
    posterior = anatomy.ventricle_sites[anatomy.ventricle_sites[:, 1] < -25]
    n_choroid = int(rng.integers(2, 5))
    dirs = rng.normal(size=(n_vessels, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    f32 = np.float32
    return Mimics(
        halo=float(rng.uniform(0.4, 1.0)),
        wmh_centres=anatomy.wm_sites[rng.integers(len(anatomy.wm_sites), size=n_wmh)],
        wmh_radii=rng.uniform(1.5, 4.5, size=n_wmh).astype(f32),
        vessel_starts=anatomy.vessel_sites[rng.integers(len(anatomy.vessel_sites), size=n_vessels)],
        vessel_dirs=dirs.astype(f32),
        vessel_lengths=rng.uniform(8, 35, size=n_vessels).astype(f32),
        vessel_radii=rng.uniform(0.6, 1.3, size=n_vessels).astype(f32),
        choroid_centres=posterior[rng.integers(len(posterior), size=n_choroid)],
        choroid_radii=rng.uniform(2.5, 4.5, size=n_choroid).astype(f32),
        rim=float(rng.uniform(0.75, 1.0)),
        rim_width=float(rng.uniform(0.35, 0.7)),
        lining=float(rng.uniform(0.8, 1.0)),
        # Long patches: the bands run for centimetres, then fade.
        patches=SmoothField(rng, n_out=2, n_modes=12, wavelength=(25.0, 90.0), amplitude=0.6),
    )


def draw_plaques(rng, mimics: Mimics, sites: np.ndarray, near_slice: np.ndarray, tumour: Tumour) -> Mimics:
    """Add confluent white-matter lesions (plaques) to ``mimics``; returns it.

    ``sites`` are candidate centres (world mm) and ``near_slice`` their signed
    distance (mm) to the slice's plane: a plaque is centred within half its
    radius of the slice, so that the slice shows it, and at least its radius
    plus 1.5 tumour radii from every focus, so that it is not part of the tumour.
    """
    n = min(int(rng.poisson(PLAQUE_COUNT)), PLAQUE_MAX)
    radii = rng.uniform(*PLAQUE_RADIUS_MM, size=n).astype(np.float32)
    centres, kept, shapes = [], [], []
    for radius in radii:
        free = np.abs(near_slice) < 0.5 * radius
        for focus in tumour.foci:
            free &= np.linalg.norm(sites - focus.centre, axis=1) > 1.5 * focus.radius + radius
        axes = rng.uniform(0.7, 1.4, size=3)
        orient = Rotation.random(random_state=rng).as_matrix()
        pick = rng.integers(1 << 30)
        if not free.any():
            continue
        candidates = np.flatnonzero(free)
        centres.append(sites[candidates[pick % len(candidates)]])
        kept.append(radius)
        shapes.append(np.diag(1.0 / (radius * axes)) @ orient.T)
    if kept:
        mimics.plaque_centres = np.asarray(centres, np.float32)
        mimics.plaque_radii = np.asarray(kept, np.float32)
        mimics.plaque_shapes = np.asarray(shapes, np.float32)
    return mimics
