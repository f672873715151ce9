"""One simulated patient: anatomy warped by a random affine and elastic field, a tumour, contrast.

Only the planes that are needed are ever computed: the slice itself on the
240 x 240 grid at 1 mm, and a coarse 3D lattice over the whole head from
which the volume's brain statistics (for the z-score) are estimated. Each
point is mapped from the patient's space to the template's (affine, elastic
displacement, then the tumour's mass effect) and the templates are sampled
there with ``scipy.ndimage.map_coordinates``.

Intensities are in units of healthy white matter (1 in every modality) before
the per-modality bias field and noise; relative values follow what BraTS
shows: CSF dark on T1 and FLAIR, bright on T2; oedema bright on T2 and FLAIR,
slightly dark on T1; an enhancing rim bright on T1ce around a necrotic centre
that is dark on T1 and T1ce and bright on T2. Thin bands that hold free water
(skull-stripping residue along the brain's edge, the ventricles' lining) look
like oedema pixel by pixel: only context (the background or fluid beside them)
tells them apart, as on real BraTS slices.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from data_spec.constants import HEIGHT, N_MODALITIES, WIDTH, X_DTYPE, Y_DTYPE
from .anatomy import Anatomy
from .fields import SmoothField
from .lesion import Mimics, Tumour, draw_mimics, draw_plaques, draw_tumour

# Healthy tissue and lesion compartments, (t1, t1ce, t2, flair), white matter = 1.
# T1 and T1ce take their healthy values from the T1 template itself; the GM and
# CSF rows apply to T2 and FLAIR, mixed by the tissue probabilities.
GM = np.array([0.0, 0.0, 1.35, 1.12], dtype=np.float32)
CSF = np.array([0.0, 0.0, 2.9, 0.35], dtype=np.float32)
#: Added to the healthy tissue where oedema infiltrates it.
OEDEMA = np.array([-0.13, -0.13, 0.85, 0.8], dtype=np.float32)
#: High grade: enhancing rim and necrotic centre replace the tissue.
ENHANCING = np.array([0.72, 1.75, 1.45, 1.45], dtype=np.float32)
NECROSIS = np.array([0.42, 0.38, 2.3, 0.95], dtype=np.float32)
#: Low grade: a non-enhancing core.
NONENHANCING = np.array([0.62, 0.64, 1.95, 1.65], dtype=np.float32)
#: Mimics, added to the healthy tissue where present.
HALO = np.array([-0.03, -0.03, 0.3, 0.45], dtype=np.float32)
WMH = np.array([-0.06, -0.06, 0.7, 0.75], dtype=np.float32)
#: Confluent white-matter lesions (plaques): oedema's look, scaled per patient by PLAQUE_GAIN.
PLAQUE = np.array([-0.12, -0.12, 0.8, 0.8], dtype=np.float32)
PLAQUE_GAIN = (0.9, 1.5)
VESSEL = np.array([0.05, 0.95, -0.5, 0.05], dtype=np.float32)
CHOROID = np.array([0.4, 1.3, -1.2, 0.45], dtype=np.float32)
#: Thin bright bands (brain-edge rim, ventricle lining) hold free water, as oedema does:
#: the tissue there turns into oedematous white matter, OEDEMA (jittered, without the
#: oedema's gain) scaled by this (per patient).
BAND = (0.6, 0.85)
#: The oedema's infiltrative margin: over its outer MARGIN_MM (mm), the oedema's contrast
#: falls to FAINT of its full value at the label's boundary (per patient, uniform ranges).
MARGIN_MM = (1.5, 3.5)
FAINT = (0.6, 0.85)
#: Per-patient ranges (uniform): head size relative to the template, the oedema's contrast
#: (a gain on OEDEMA), the tumour's texture (relative), the noise (a gain on NOISE).
HEAD_SCALE = (0.9, 1.01)
OEDEMA_GAIN = (0.9, 1.6)
HETEROGENEITY = (0.05, 0.18)
NOISE_GAIN = (0.45, 0.8)
#: The slice crosses the main focus within this fraction of its radius from its centre.
SLICE_OFFSET = 0.45
#: Template heights (world mm) within which a slice away from the tumour must stay: brain.
AWAY_TEMPLATE_Z = (-40.0, 70.0)
#: The faintest tissue signal (white-matter units): brain pixels stay above the background's 0.
MIN_SIGNAL = 1e-3
#: Per-pixel noise, in white-matter units.
NOISE = np.array([0.056, 0.064, 0.1, 0.08], dtype=np.float32)

# The slice's grid: rows run anterior -> posterior, columns the patient's right -> left
# (radiological view), 1 mm pixels, centred on the brain.
_rows, _cols = np.mgrid[:HEIGHT, :WIDTH].astype(np.float32)
PLANE_XY = np.stack([(WIDTH - 1) / 2 - _cols, (HEIGHT - 1) / 2 - _rows], axis=-1).reshape(-1, 2)
#: Spacing (mm) of the coarse lattice over the head used for the volume statistics.
STATS_SPACING = 8.0
_lattice = np.mgrid[-100:100:STATS_SPACING, -120:120:STATS_SPACING, -85:85:STATS_SPACING].astype(np.float32)
STATS_LATTICE = _lattice.reshape(3, -1).T


def _r(value, decimals: int):
    """JSON-friendly rounding of a number or an array (via float64, so 0.1 stays 0.1)."""
    return np.round(np.asarray(value, dtype=np.float64), decimals).tolist()


def _template_z(z, centre_p, linear, shift, anatomy) -> float:
    """Template height (world mm) of the patient point above the focus, at patient height ``z``."""
    return float((linear @ np.array([centre_p[0] - shift[0], centre_p[1] - shift[1], z - shift[2]]) + anatomy.centre)[2])


def _inside_brain(offset, centre_p, linear, shift, anatomy) -> float:
    """The offset of a slice away from the tumour, kept within the brain's heights.

    Go the other way when ``offset`` would leave the brain; when both ways would
    (a large focus), take the nearer one and stop at the brain's limit.
    """
    lo, hi = AWAY_TEMPLATE_Z
    for o in (offset, -offset):
        if lo < _template_z(centre_p[2] + o, centre_p, linear, shift, anatomy) < hi:
            return float(o)
    # The template height is linear in the offset: solve for the nearer limit.
    z0 = _template_z(centre_p[2], centre_p, linear, shift, anatomy)
    slope = _template_z(centre_p[2] + 1.0, centre_p, linear, shift, anatomy) - z0
    best = None
    for o in (offset, -offset):
        limit = hi - 2 if (z0 + slope * o) >= hi else lo + 2
        shrunk = (limit - z0) / slope
        if np.sign(shrunk) == np.sign(o) and (best is None or abs(shrunk) > abs(best)):
            best = shrunk
    return float(best if best is not None else 0.0)


def _jitter(rng, base, spread):
    return (base * np.exp(rng.normal(0, spread, size=base.shape))).astype(np.float32)


@dataclass
class Patient:
    """A simulated patient: geometry, tumour, mimics, contrast, and the chosen slice."""

    anatomy: Anatomy = field(repr=False)
    linear: np.ndarray
    shift: np.ndarray
    elastic: SmoothField = field(repr=False)
    bias: SmoothField = field(repr=False)
    tumour: Tumour
    mimics: Mimics
    contrast: dict
    slice_z: float
    away: bool
    params: dict

    @classmethod
    def draw(cls, rng, anatomy: Anatomy, away: bool = False) -> "Patient":
        """Draw every random choice of one patient from ``rng``, in a fixed order.

        ``away`` places the slice beyond the main focus: usually tumour-free.
        """
        angles = rng.normal(0, 1, size=3) * np.array([5.0, 3.0, 7.0])  # pitch, roll, in-plane (deg)
        scale = rng.uniform(*HEAD_SCALE) * np.exp(rng.normal(0, 0.03, size=3))
        # Patient -> template: undo the patient's size, then its head rotation.
        linear = (Rotation.from_euler("xyz", angles, degrees=True).as_matrix() @ np.diag(1 / scale)).astype(np.float32)
        shift = np.array([*rng.normal(0, 4.0, size=2), 0.0], dtype=np.float32)
        elastic = SmoothField(rng, n_out=3, n_modes=8, wavelength=(30.0, 100.0), amplitude=2.5)
        bias = SmoothField(rng, n_out=N_MODALITIES, n_modes=6, wavelength=(90.0, 300.0), amplitude=0.07)
        tumour = draw_tumour(rng, anatomy)
        mimics = draw_mimics(rng, anatomy)
        contrast = {
            # T1 and T1ce are different sequences: each its own grey/white contrast.
            "t1_gamma": float(rng.uniform(0.8, 1.25)),
            "t1ce_gamma": float(rng.uniform(0.7, 1.15)),
            "gm": _jitter(rng, GM, 0.05),
            "csf": _jitter(rng, CSF, 0.1),
            "oedema_look": _jitter(rng, OEDEMA, 0.15),
            "oedema_gain": np.float32(rng.uniform(*OEDEMA_GAIN)),
            "enhancing": _jitter(rng, ENHANCING, 0.1),
            "necrosis": _jitter(rng, NECROSIS, 0.1),
            "nonenhancing": _jitter(rng, NONENHANCING, 0.1),
            "heterogeneity": float(rng.uniform(*HETEROGENEITY)),
            "halo": _jitter(rng, HALO, 0.1) * np.float32(mimics.halo),
            "wmh": _jitter(rng, WMH, 0.15),
            "vessel": _jitter(rng, VESSEL, 0.15),
            "choroid": _jitter(rng, CHOROID, 0.1),
            "noise": _jitter(rng, NOISE, 0.15) * np.float32(rng.uniform(*NOISE_GAIN)),
        }
        contrast["oedema"] = contrast["oedema_look"] * contrast.pop("oedema_gain")
        # The bands' free water has oedema's look but not its per-patient strength: tied to
        # the oedema's gain, a patient with bright oedema had a bright rim too, and the rim's
        # false positives swung the pixel classifiers' precision from cohort to cohort.
        contrast["band"] = 1 + contrast.pop("oedema_look") * np.float32(rng.uniform(*BAND))
        # The slice: through the main focus, or (rarely) well away from it.
        focus = tumour.foci[0]
        centre_p = np.linalg.solve(linear, focus.centre - anatomy.centre) + shift
        if away:
            offset = rng.choice([-1.0, 1.0]) * (1.4 * focus.radius + rng.uniform(4, 12))
            offset = _inside_brain(offset, centre_p, linear, shift, anatomy)
        else:
            offset = rng.uniform(-SLICE_OFFSET, SLICE_OFFSET) * focus.radius
        slice_z = float(centre_p[2] + offset)
        # Infiltrative margin: the oedema's outer millimetres are faint (drawn after the
        # slice, so that every earlier draw keeps its place in the patient's stream).
        contrast["margin_mm"] = float(rng.uniform(*MARGIN_MM))
        contrast["faint"] = float(rng.uniform(*FAINT))
        # Plaques: near the slice (the affine's inverse; the elastic field moves a few mm).
        sites = anatomy.wm_sites
        patient_z = np.linalg.solve(linear, (sites - anatomy.centre).T)[2] + shift[2]
        mimics = draw_plaques(rng, mimics, sites, patient_z - slice_z, tumour)
        contrast["plaque"] = _jitter(rng, PLAQUE, 0.1) * np.float32(rng.uniform(*PLAQUE_GAIN))
        params = {
            "rotation_deg": _r(angles, 2),
            "scale": _r(scale, 3),
            "shift_mm": _r(shift[:2], 1),
            "slice_z_mm": _r(slice_z, 1),
            "slice_offset_from_tumour_mm": _r(offset, 1),
            "slice_away_from_tumour": away,
            "tumour": tumour.summary(),
            "mimics": mimics.summary(),
            "t1_gamma": _r(contrast["t1_gamma"], 3),
            "t1ce_gamma": _r(contrast["t1ce_gamma"], 3),
            "oedema_contrast": _r(contrast["oedema"], 3),
            "oedema_margin_mm": _r(contrast["margin_mm"], 2),
            "oedema_margin_faint": _r(contrast["faint"], 3),
            "plaque_contrast": _r(contrast["plaque"], 3),
            "noise": _r(contrast["noise"], 4),
        }
        return cls(anatomy, linear, shift, elastic, bias, tumour, mimics, contrast, slice_z, away, params)

    def to_template(self, p: np.ndarray) -> np.ndarray:
        """Patient points (n, 3) mm -> template world points: affine, then elastic displacement."""
        return (p - self.shift) @ self.linear.T + self.anatomy.centre.astype(np.float32) + self.elastic(p)

    def render(self, p: np.ndarray, mimics: bool = True):
        """Noise-free intensities at patient points (n, 3).

        ``mimics=False`` leaves out the small mimics (vessels, white-matter
        hyperintensities, choroid plexus): under 1% of the brain, they do not
        move the volume statistics. The thin bands (brain-edge rim, ventricle
        lining) and the plaques are always rendered: they are not small.

        Returns
        -------
        raw : ndarray float32 (n, 4)
            White-matter units, bias field applied; 0 outside the brain.
        brain : ndarray bool (n,)
        label : ndarray bool (n,)
            Whole tumour, inside the brain.
        """
        anatomy, c = self.anatomy, self.contrast
        raw = np.zeros((len(p), N_MODALITIES), dtype=np.float32)
        brain = np.zeros(len(p), dtype=bool)
        label = np.zeros(len(p), dtype=bool)
        # Points far outside the brain stay background. The hull's 12 mm margin covers
        # what is skipped in this test: the elastic field, a few mm.
        affine_only = (p - self.shift) @ self.linear.T + self.anatomy.centre.astype(np.float32)
        rough = anatomy.to_voxel(self.tumour.displace(affine_only))
        near = np.flatnonzero(anatomy.sample("hull", rough, order=0) > 0.5)
        p = p[near]
        q = affine_only[near] + self.elastic(p)
        qa = self.tumour.displace(q)
        vox = anatomy.to_voxel(qa)
        mask = anatomy.sample("mask", vox)
        keep = np.flatnonzero(mask > 0.05)
        near, p, q, qa, vox, mask = near[keep], p[keep], q[keep], qa[keep], vox[:, keep], mask[keep]
        brain[near] = mask >= 0.5
        if len(near) == 0:
            return raw, brain, label
        t1 = anatomy.sample("t1", vox)
        gm, wm = anatomy.sample("gm", vox), anatomy.sample("wm", vox)
        # Interpolation is linear, so the fluid is the mask minus the two tissues here too.
        csf = np.maximum(mask - gm - wm, 0)
        tissue = np.maximum(gm + wm + csf, 1e-3)
        gm, wm, csf = gm / tissue, wm / tissue, csf / tissue

        value = np.empty((len(near), N_MODALITIES), dtype=np.float32)
        t1 = np.clip(t1, 0, None)
        value[:, 0] = t1 ** c["t1_gamma"]
        value[:, 1] = t1 ** c["t1ce_gamma"]
        value[:, 2:] = wm[:, None] + gm[:, None] * c["gm"][2:] + csf[:, None] * c["csf"][2:]

        value += anatomy.sample("halo", vox)[:, None] * c["halo"]
        if mimics:
            m = self.mimics
            value += (m.wmh(qa) * wm)[:, None] * c["wmh"]
            # Vessels run in fluid and grey matter, not deep in white matter.
            outside_wm = np.flatnonzero(wm < 0.97)
            value[outside_wm] += (m.vessels(qa[outside_wm]) * (1 - wm[outside_wm]))[:, None] * c["vessel"]
            value += (m.choroid(qa) * csf)[:, None] * c["choroid"]
        # Plaques, up to 3 ml each: enough to move the volume's FLAIR spread, so always rendered.
        if len(self.mimics.plaque_centres):
            value += (self.mimics.plaques(qa) * np.clip(wm + 0.5 * gm, 0, 1))[:, None] * c["plaque"]

        # Thin bright bands, a few % of the brain: always rendered, statistics included.
        # The rim: the outermost millimetre or two of the brain. The lining: where tissue
        # meets the ventricles' fluid (partial volume), near the ventricles. Pixel by pixel
        # they look like oedema; a 3 x 3 window sees the background or fluid beside them.
        m = self.mimics
        rim = np.exp(-np.maximum(anatomy.sample("edge", vox) - 1.4, 0) / m.rim_width) * m.rim
        lining = np.minimum(anatomy.sample("lining", vox) * (6 * csf * (1 - csf)), 1) * m.lining
        band = np.flatnonzero((rim > 0.02) | (lining > 0.02))
        if len(band):
            patch = m.bands(qa[band])
            a = np.maximum(rim[band] * patch[:, 0], lining[band] * patch[:, 1])[:, None]
            value[band] = value[band] * (1 - a) + a * c["band"]

        whole, core, necrosis, density = self.tumour.memberships(q, wm, c["margin_mm"])
        hit = np.flatnonzero(whole > 1e-3)
        if len(hit):
            whole, core, necrosis = whole[hit, None], core[hit, None], necrosis[hit, None]
            faint = c["faint"]
            oedema = c["oedema"] * (faint + (1 - faint) * density[hit, None])
            texture = 1 + c["heterogeneity"] * self.tumour.texture(q[hit])
            core_look = c["enhancing"] if self.tumour.high_grade else c["nonenhancing"]
            value[hit] = (
                value[hit] * (1 - core)
                + ((whole - core) * oedema + (core - necrosis) * core_look + necrosis * c["necrosis"]) * texture
            )
            label[near[hit]] = whole[:, 0] >= 0.5
        value *= np.exp(self.bias(p))
        raw[near] = value
        return raw, brain, label & brain

    def volume_statistics(self, rng):
        """Mean and std of each modality over the brain of the (never built) 3D volume.

        Estimated on a coarse lattice over the head, randomly offset; the noise,
        independent of the signal, adds its variance.
        """
        p = STATS_LATTICE + rng.uniform(0, STATS_SPACING, size=3).astype(np.float32)
        raw, brain, _ = self.render(p, mimics=False)
        v = raw[brain].astype(np.float64)
        mean = v.mean(axis=0)
        std = np.sqrt(v.var(axis=0) + self.contrast["noise"].astype(np.float64) ** 2)
        return mean, std

    def slice(self, rng):
        """The normalised slice: x (240, 240, 4) float32, y (240, 240) uint8."""
        p = np.empty((len(PLANE_XY), 3), dtype=np.float32)
        p[:, :2] = PLANE_XY
        p[:, 2] = self.slice_z
        raw, brain, label = self.render(p)
        mean, std = self.volume_statistics(rng)
        noisy = raw + rng.standard_normal(raw.shape, dtype=np.float32) * self.contrast["noise"]
        # Magnitude images: tissue is never below 0, background is 0 exactly. Once
        # normalised, background is then each modality's slice minimum and every brain
        # pixel lies strictly above it in all four modalities (the course's foreground rule).
        noisy = np.maximum(noisy, np.float32(MIN_SIGNAL))
        noisy[~brain] = 0
        x = ((noisy - mean) / std).astype(X_DTYPE)
        return x.reshape(HEIGHT, WIDTH, N_MODALITIES), label.reshape(HEIGHT, WIDTH).astype(Y_DTYPE)
