"""Model files: the fitted segmenter in skops format, with what is needed to trust it again.

The file is a skops archive (a zip of JSON and ``.npy`` members, no pickle)
holding a dict: ``format``, ``format_version``, ``kit_version``,
``spec_version``, ``sklearn_version``, ``baseline`` (name), ``seed``,
``metrics`` (validation scores at training time) and ``estimator``.

Loading never runs code from the file. :func:`load_model` reads the header
from the archive's schema first and refuses, with a named error and before any
object is built: a missing file, a file that is not a brats-kit model (or is
damaged), a model from an incompatible version (another data contract, kit
release or scikit-learn), and a file that names any type outside
:data:`TRUSTED_TYPES` (the kit's own classes) and the scikit-learn and numpy
types skops trusts by default. Model files written with pickle (joblib) by
earlier releases are refused: retrain them.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import sklearn

from plumbing import __version__ as KIT_VERSION
from plumbing.atomic import atomic_path
from data_spec import SPEC_VERSION, CorruptFileError, KitError, MissingFileError
from data_spec.layout import check_output_file

MODEL_FORMAT = "brats-kit-model"
MODEL_FORMAT_VERSION = 2  # 1 was a joblib pickle; 2 is skops

#: The types a model file may name besides those skops trusts by default (scikit-learn's
#: estimators, numpy's arrays and scalars, Python's containers): the kit's own classes,
#: and the MLP's optimiser, which skops does not list.
TRUSTED_TYPES = (
    "baselines.segmenter.PixelSegmenter",
    "baselines.features.PixelFeatures",
    "baselines.features.WindowFeatures",
    "baselines.features.MultiScaleFeatures",
    "baselines.sampling.BalancedSampler",
    "baselines.classifiers.ClusterClassifier",
    "baselines.classifiers.ThresholdClassifier",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)

#: The rule, as told to users (``baseline predict --help`` and README).
LOADING_RULE = (
    "Model files are skops archives: loading one never runs code from it. A file that names any type "
    "outside the kit's own classes and the scikit-learn and numpy types skops trusts is refused before "
    "anything is built; so are pickles (joblib files) and models from another kit release or scikit-learn."
)

#: Refuse archives whose members would unpack to more than this (a model is a few MB).
MAX_UNPACKED_BYTES = 1 << 30
#: ... and a schema larger than this.
MAX_SCHEMA_BYTES = 64 << 20

_HEADER = ("format", "format_version", "kit_version", "spec_version", "sklearn_version", "baseline", "seed")


class NotAModelError(CorruptFileError):
    """A file that is not a brats-kit model file, or a damaged one."""

    code = "not_a_model"


class IncompatibleModelError(KitError, ValueError):
    """A model file written by an incompatible kit, data contract or scikit-learn."""

    code = "incompatible_model"


class UntrustedModelError(KitError, ValueError):
    """A model file that names types the kit does not trust to build (they could run code)."""

    code = "untrusted_model"


def _release(version: str) -> str:
    """``major.minor`` of a version string: the part that must match."""
    return ".".join(str(version).split("+")[0].split(".")[:2])


# -- writing --------------------------------------------------------------------------------------


def _canonical(archive: bytes) -> bytes:
    """The same skops archive with object ids, member names and dates that depend only on the content.

    skops names members and nodes by ``id()`` and stamps the time: renumbered in
    order of appearance, the same model gives the same bytes.
    """
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        schema = json.loads(zf.read("schema.json"))
        members = {name: zf.read(name) for name in zf.namelist() if name != "schema.json"}
    ids, files = {}, {}

    def walk(node):
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    out[key] = ids.setdefault(value, len(ids) + 1)
                elif key == "file" and isinstance(value, str) and value in members:
                    out[key] = files.setdefault(value, f"{len(files) + 1}{Path(value).suffix}")
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for old, new in files.items():
            zf.writestr(zipfile.ZipInfo(new, date_time=(1980, 1, 1, 0, 0, 0)), members[old],
                        compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
        zf.writestr(zipfile.ZipInfo("schema.json", date_time=(1980, 1, 1, 0, 0, 0)),
                    json.dumps(schema, indent=1, sort_keys=True), compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def save_model(path, estimator, *, baseline: str, seed: int = 0, metrics: dict | None = None,
               force: bool = False) -> Path:
    """Atomically write a fitted segmenter as a model file.

    Parameters
    ----------
    path : path-like
    estimator : fitted PixelSegmenter
    baseline : str
        Its name (``mlp-window3``...), or a free label for a custom model.
    seed : int
    metrics : dict, optional
        Validation scores to keep with it (shown when it is loaded).
    force : bool
        Replace an existing file that is not a model file (see
        :func:`check_model_out`).

    Returns
    -------
    Path

    Raises
    ------
    OverwriteError
        ``path`` is a file that is not a model file (without ``force``), a
        file of the contract, or lies in a competition's ``private/``.
    UntrustedModelError
        The estimator holds types :func:`load_model` would refuse.
    """
    import skops.io as sio

    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "kit_version": KIT_VERSION,
        "spec_version": SPEC_VERSION,
        "sklearn_version": sklearn.__version__,
        "baseline": baseline,
        "seed": seed,
        "metrics": dict(metrics or {}),
        "estimator": estimator,
    }
    data = sio.dumps(payload)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise UntrustedModelError(
            f"the estimator holds types a model file may not name: {', '.join(untrusted)}",
            expected="a segmenter built from the kit's classes and scikit-learn",
        )
    data = _canonical(data)
    with atomic_path(path, check=lambda p: check_model_out(p, force=force)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def check_model_out(path, *, force: bool = False) -> Path:
    """Refuse to write a model at ``path`` over anything but a model file (unless ``force``).

    See :func:`data_spec.layout.check_output_file`: never into a competition's
    ``private/`` or over a file of the contract, whatever ``force`` says.
    """
    return check_output_file(path, what="a brats-kit model file", recognise=is_model_file, force=force)


# -- reading --------------------------------------------------------------------------------------


def _not_a_model(path, message: str, hint: str | None = None) -> NotAModelError:
    return NotAModelError(
        message, path=path, expected="a model file written by 'brats-kit baseline train' (a skops archive)",
        hint=hint or "pass the file 'baseline train --out' wrote",
    )


def _is_pickle(head: bytes) -> bool:
    # A pickle's PROTO opcode, or joblib's zlib-compressed pickle.
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head[:1] == b"\x78"


def read_header(path) -> dict:
    """The header fields of a model file, read from its schema without building any object.

    Returns
    -------
    dict
        The fields of ``_HEADER`` that are plain JSON values (others are absent).

    Raises
    ------
    NotAModelError
        Not a zip archive, no schema, a damaged or oversized one, not a dict.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:4] != b"PK\x03\x04":
        if _is_pickle(head):
            raise _not_a_model(path, "is a pickle (a joblib model file of an earlier release?): never loaded",
                               "pickles can run code when loaded; retrain the model with 'brats-kit baseline train'")
        raise _not_a_model(path, "is not a model file (not a skops archive)")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
                raise _not_a_model(path, f"would unpack to more than {MAX_UNPACKED_BYTES} bytes")
            info = zf.getinfo("schema.json")
            if info.file_size > MAX_SCHEMA_BYTES:
                raise _not_a_model(path, "has an oversized schema")
            with zf.open(info) as member:
                raw = member.read(MAX_SCHEMA_BYTES + 1)
        schema = json.loads(raw)
    except NotAModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile and json raise many types on a damaged file
        raise _not_a_model(path, f"cannot be read as a model file ({type(exc).__name__})") from None
    content = schema.get("content") if isinstance(schema, dict) else None
    if not (isinstance(schema, dict) and schema.get("__class__") == "dict" and isinstance(content, dict)):
        raise _not_a_model(path, "is not a brats-kit model file (its archive holds no dict)")
    header = {}
    for key in _HEADER:
        node = content.get(key)
        if isinstance(node, dict) and node.get("__loader__") == "JsonNode" and isinstance(node.get("content"), str):
            try:
                header[key] = json.loads(node["content"])
            except ValueError:
                raise _not_a_model(path, f"has a damaged header field {key!r}") from None
    header["_has_estimator"] = "estimator" in content
    return header


def is_model_file(path) -> bool:
    """Whether ``path`` is a brats-kit model file (by its header; nothing is built)."""
    try:
        return read_header(path).get("format") == MODEL_FORMAT
    except (KitError, OSError):
        return False


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_header(path, header: dict) -> None:
    if header.get("format") != MODEL_FORMAT or not header["_has_estimator"]:
        raise _not_a_model(
            path, "not a brats-kit model file",
            "a submission or a data file is not a model; pass the file 'baseline train --out' wrote",
        )
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _not_a_model(path, f"has a damaged header: format_version is {_describe(version)}, not an integer")
    for key in ("kit_version", "spec_version", "sklearn_version"):
        if not isinstance(header.get(key), str):
            raise _not_a_model(path, f"has a damaged header: {key} is {_describe(header.get(key))}, not a string")
    checks = [
        ("model format", version, MODEL_FORMAT_VERSION, lambda v: v),
        ("data contract", header["spec_version"], SPEC_VERSION, lambda v: v),
        ("brats-kit release", header["kit_version"], KIT_VERSION, _release),
        ("scikit-learn", header["sklearn_version"], sklearn.__version__, lambda v: v),
    ]
    for what, theirs, ours, key in checks:
        if key(theirs) != key(ours):
            raise IncompatibleModelError(
                f"written with {what} {theirs}, this is {ours}",
                path=path,
                expected=f"a model from {what} {ours}",
                hint="retrain it here with 'brats-kit baseline train'",
            )


_TYPE_NAME = re.compile(r"[\w.]+")


def load_model(path) -> dict:
    """Read a model file written by :func:`save_model`, checking that it is safe and usable here.

    Nothing in the file is built before its header and the types it names are
    checked: an untrusted file cannot run code.

    Returns
    -------
    dict
        The saved payload; ``payload["estimator"]`` is the fitted segmenter.

    Raises
    ------
    MissingFileError
        No such file.
    NotAModelError
        Not a skops archive (a pickle above all), not a brats-kit model, a
        damaged header, or no fitted segmenter inside.
    IncompatibleModelError
        Written by another model format, data contract, kit release or scikit-learn.
    UntrustedModelError
        It names a type outside :data:`TRUSTED_TYPES` and skops' defaults.
    """
    import skops.io as sio
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from .segmenter import PixelSegmenter

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            "model file not found", path=path, hint="train one with 'brats-kit baseline train NAME --out MODEL'"
        )
    _check_header(path, read_header(path))
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - a damaged schema
        raise _not_a_model(path, f"has a damaged schema ({type(exc).__name__})") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        shown = [t if _TYPE_NAME.fullmatch(t) else repr(t) for t in refused[:5]]
        raise UntrustedModelError(
            f"names types the kit does not trust: {', '.join(shown)}" + (", ..." if len(refused) > 5 else ""),
            path=path,
            expected="only the kit's classes and the scikit-learn and numpy types skops trusts",
            hint="loading it could run code: nothing was built. Retrain the model with 'brats-kit baseline train'",
        )
    try:
        payload = sio.load(path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # noqa: BLE001 - a damaged archive raises many types
        raise _not_a_model(path, f"is damaged ({type(exc).__name__})") from None
    estimator = payload.get("estimator") if isinstance(payload, dict) else None
    if not isinstance(estimator, PixelSegmenter):
        raise _not_a_model(path, f"holds no segmenter (its estimator is {_describe(estimator)[:80]})")
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise _not_a_model(path, "holds a segmenter that was never fitted") from None
    return payload
