"""The healthy anatomy: the MNI152 2009 templates that nilearn ships, loaded once per process.

nilearn's wheel holds the ICBM 2009a nonlinear symmetric T1, grey- and
white-matter templates at 1 mm (197 x 233 x 189); ``resolution=1`` loads them
from the installed package, never from the network. From them we derive, once:
cerebrospinal fluid (brain mask minus grey and white matter), a depth map, a
periventricular halo (where small-vessel disease makes FLAIR bright), and the
candidate sites for tumours, vessels and white-matter lesions.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: What the cohort is built on, written into the provenance attributes.
TEMPLATES = (
    "MNI152 ICBM 2009a nonlinear symmetric, 1 mm (nilearn.datasets): "
    "load_mni152_template, load_mni152_gm_template, load_mni152_wm_template, load_mni152_brain_mask"
)
TEMPLATE_FUNCTIONS = (
    "load_mni152_template",
    "load_mni152_gm_template",
    "load_mni152_wm_template",
    "load_mni152_brain_mask",
)
# Derived maps are kept at 2 mm: they are smooth, and this keeps the one-off cost small.
_COARSE = 2
_COARSE_MAPS = ("depth", "halo", "hull", "lining")
#: The fine distance to the surface is only needed near it (the rim is a few mm thick).
EDGE_CAP = 8.0


@dataclass(frozen=True)
class Anatomy:
    """Template volumes in voxel space, and where things may be placed (world mm, MNI).

    Attributes
    ----------
    t1, gm, wm, mask : ndarray float32 (199, 235, 191)
        T1 scaled so that white matter is 1; tissue probabilities; brain mask (0/1).
        Fluid is what the mask holds beyond grey and white matter.
    edge : ndarray float32 (199, 235, 191)
        Distance to the brain's surface at 1 mm (mm, capped at ``EDGE_CAP``):
        where the thin bright rim of skull-stripping residue lies.
    depth, halo, hull, lining : ndarray float32, at 2 mm
        Distance to the brain surface (mm); periventricular halo (0..1); the
        brain dilated by 12 mm (1 inside), to skip points that cannot be brain;
        closeness to the lateral ventricles (0..1), where their walls may show a
        thin bright lining on FLAIR.
    world_to_voxel : ndarray (4, 4)
    tumour_sites, vessel_sites, wm_sites, ventricle_sites : ndarray (n, 3) world mm
    centre : ndarray (3,)
        Centre of the brain's bounding box, world mm.
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    mask: np.ndarray
    edge: np.ndarray
    depth: np.ndarray
    halo: np.ndarray
    hull: np.ndarray
    lining: np.ndarray
    world_to_voxel: np.ndarray
    voxel_to_world: np.ndarray
    tumour_sites: np.ndarray
    vessel_sites: np.ndarray
    wm_sites: np.ndarray
    ventricle_sites: np.ndarray
    centre: np.ndarray

    def to_voxel(self, world: np.ndarray) -> np.ndarray:
        """World points (n, 3) -> voxel coordinates (3, n), ready for ``map_coordinates``."""
        a = self.world_to_voxel.astype(np.float32)
        return np.ascontiguousarray((world @ a[:3, :3].T + a[:3, 3]).T)

    def sample(self, name: str, voxel: np.ndarray, order: int = 1) -> np.ndarray:
        """Sample one map at voxel coordinates (3, n), trilinear by default; 0 outside the volume."""
        volume = getattr(self, name)
        if name in _COARSE_MAPS:
            voxel = voxel / np.float32(_COARSE)
        # The templates are 0 at their borders, so "nearest" (the fastest mode) means 0 outside.
        return ndi.map_coordinates(volume, voxel, order=order, mode="nearest", prefilter=False)


def _voxel_sites(keep: np.ndarray, affine: np.ndarray, step: int) -> np.ndarray:
    """World coordinates of the voxels where ``keep`` holds, on a grid of ``step`` voxels."""
    idx = np.argwhere(keep) * step
    return (idx @ affine[:3, :3].T + affine[:3, 3]).astype(np.float32)


@functools.lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """Load the templates from the installed nilearn and derive the maps (cached per process)."""
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    # A border of zeros (the brain stem reaches the bottom face): sampling with
    # mode "nearest" then gives 0 outside the volume.
    t1, gm, wm, mask = (
        np.pad(img.get_fdata(dtype=np.float32), 1)
        for img in (
            t1_img,
            datasets.load_mni152_gm_template(resolution=1),
            datasets.load_mni152_wm_template(resolution=1),
            datasets.load_mni152_brain_mask(resolution=1),
        )
    )
    affine = t1_img.affine.astype(np.float64) @ np.array(
        [[1, 0, 0, -1], [0, 1, 0, -1], [0, 0, 1, -1], [0, 0, 0, 1]], dtype=np.float64
    )

    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    t1 = t1 / np.float32(np.median(t1[wm > 0.9]))  # white matter at 1

    coarse = (slice(None, None, _COARSE),) * 3
    caffine = affine.copy()
    caffine[:3, :3] *= _COARSE
    cmask = mask[coarse] > 0.5
    depth = (ndi.distance_transform_edt(cmask) * _COARSE).astype(np.float32)
    hull = (ndi.distance_transform_edt(~cmask) * _COARSE < 12).astype(np.float32)
    lo, hi = np.argwhere(cmask).min(axis=0), np.argwhere(cmask).max(axis=0)
    world = np.stack(np.meshgrid(*[np.arange(s) for s in cmask.shape], indexing="ij"), -1) @ caffine[:3, :3].T
    world += caffine[:3, 3]
    ccsf, cgm, cwm = csf[coarse], gm[coarse], wm[coarse]
    # The lateral ventricles: deep, fluid, near the midline. Their halo is the
    # periventricular white matter where FLAIR brightens with age (a tumour mimic).
    ventricles = (ccsf > 0.6) & (depth > 18) & (np.abs(world[..., 0]) < 32) & (world[..., 2] > -5)
    halo = ndi.gaussian_filter(ventricles.astype(np.float32), 5.0 / _COARSE)
    halo = np.clip(halo * 2.5, 0, 1) * np.clip(cwm * 1.3, 0, 1) * (1 - ccsf)
    lining = np.clip(ndi.gaussian_filter(ventricles.astype(np.float32), 3.0 / _COARSE) * 3.0, 0, 1)
    # The surface at 1 mm, computed on the brain's bounding box only (the rest is far from it).
    inside = mask > 0.5
    box = tuple(slice(max(a - 2, 0), b + 3) for a, b in zip(*(np.argwhere(inside).min(0), np.argwhere(inside).max(0))))
    edge = np.zeros(mask.shape, dtype=np.float32)
    edge[box] = np.minimum(ndi.distance_transform_edt(inside[box]), EDGE_CAP)
    supratentorial = (world[..., 2] > -22) & (world[..., 2] < 52)
    return Anatomy(
        t1=np.ascontiguousarray(t1),
        gm=gm,
        wm=wm,
        mask=mask,
        edge=edge,
        depth=depth,
        halo=halo.astype(np.float32),
        hull=hull,
        lining=lining.astype(np.float32),
        world_to_voxel=np.linalg.inv(affine),
        voxel_to_world=affine,
        tumour_sites=_voxel_sites((cgm + cwm > 0.7) & (depth > 14) & supratentorial, affine, _COARSE),
        vessel_sites=_voxel_sites((ccsf > 0.35) & (depth < 14) & (world[..., 2] > -40), affine, _COARSE),
        wm_sites=_voxel_sites((cwm > 0.85) & (depth > 10), affine, _COARSE),
        ventricle_sites=_voxel_sites(ventricles, affine, _COARSE),
        centre=((lo + hi) / 2 * _COARSE) @ affine[:3, :3].T + affine[:3, 3],
    )
