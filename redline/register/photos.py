"""Field findings and their photos: the photo store beside the register, and the record a field
check (外业核查) leaves in the register's history.

**A finding** is one signed ``review`` entry of the alert, written by
:meth:`redline.register.Register.review` with ``finding=`` (:class:`FieldFinding`) and ``by`` =
the user who made it, under the same rules as every decision (:mod:`redline.register.rules`:
an enabled user, the alert in their counties and zones, and a status change only when their
role may make it). Its ``note`` is the finding's text; its ``payload`` is
``{"field": FieldFinding.payload()}``: the result (:data:`redline.vocabulary.FIELD_RESULTS`),
the browser's position and accuracy when given (WGS 84 degrees, metres), and per photo its
sha256, media type, size in bytes, EXIF DateTimeOriginal and EXIF GPS position. The entry's
``row_hash`` covers the payload, so every photo's sha256 is signed with the decision.

**Photos** are files named ``<sha256>.jpg`` or ``<sha256>.png`` in one folder
(:class:`PhotoStore`): for a GeoPackage register the folder ``<stem>-photos`` next to it
(``OUT/register-photos/`` for ``OUT/register.gpkg``; :func:`default_photo_folder`), for a
``postgresql://`` register the folder the service is given (``redline serve --photos DIR``).
Choices and their sources (OWASP File Upload Cheat Sheet unless said otherwise):

- the type is decided by the content, never the name or the ``Content-Type`` a client sends:
  Pillow opens the bytes with the JPEG and PNG decoders only, verifies them and decodes them
  (a JPEG at 1/8 scale, so the whole entropy-coded stream is read without a full-size bitmap);
  anything else, a truncated file included, is refused (:class:`PhotoError`);
- a size limit per photo (:data:`MAX_PHOTO_BYTES`) and per finding (:data:`MAX_PHOTOS`);
- decompression bombs are refused: more than Pillow's ``Image.MAX_IMAGE_PIXELS`` pixels
  (89 478 485, Pillow's default) is an error here, not Pillow's warning;
- the file name is generated (the sha256 of the content and the suffix of the decoded type):
  no part of a client's file name is used, so there is no path to traverse;
- the stored bytes are the uploaded bytes, untouched, so the EXIF block (time, GPS) stays as the
  camera wrote it; a polyglot file is harmless because photos are served only as
  ``image/jpeg`` / ``image/png`` with ``X-Content-Type-Options: nosniff``;
- files are written to a temporary name in the folder, flushed, synced and renamed (atomic on
  POSIX: a reader sees the whole photo or none), mode 0600 (photos may show people); storing a
  photo already there is a no-op.

``Register.verify`` (:func:`verify_photos`) checks every photo the history names: present and
its sha256 unchanged.

This module imports Pillow, pandas, :mod:`redline.vocabulary`, :mod:`redline.outputs` and :mod:`redline.errors`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import struct
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import ExifTags, Image, UnidentifiedImageError

from redline.errors import RegisterError
from redline.outputs import PHOTOS_SUFFIX, is_register_url
from redline.vocabulary import FIELD_RESULTS

__all__ = [
    "MAX_PHOTO_BYTES", "MAX_PHOTOS", "MEDIA_TYPES", "Photo", "PhotoError", "PhotoTooLarge", "FieldFinding", "PhotoStore",
    "PhotoCheck", "inspect_photo", "default_photo_folder", "photo_records", "verify_photos",
]

#: Largest photo accepted, bytes. OWASP File Upload Cheat Sheet: "set a file size limit". 15 MiB
#: is above the JPEGs of today's phone cameras (a 12-MP photo is 2–5 MB, a 50-MP one at the
#: highest quality about 10–12 MB) and keeps one finding (:data:`MAX_PHOTOS`) to ~120 MiB.
MAX_PHOTO_BYTES = 15 * 1024 * 1024
#: Photos one finding may carry (a site seen from its corners and its centre, a sign, a permit).
MAX_PHOTOS = 8
#: Pillow's format → (media type, file suffix): the only photo types accepted.
MEDIA_TYPES = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png")}
_SUFFIX = dict(MEDIA_TYPES.values())
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Pillow's own limit (``Image.MAX_IMAGE_PIXELS``, 89 478 485 px ≈ 0.25 GiB as 24-bit RGB).
_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
#: What Pillow raises on a file it cannot read as an image (corrupt, truncated, another type).
_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError)


class PhotoError(RegisterError):
    """A file that is not a photo the register keeps (not a JPEG or PNG, damaged, a
    decompression bomb, too many photos)."""


class PhotoTooLarge(PhotoError):
    """A photo larger than :data:`MAX_PHOTO_BYTES`."""


@dataclass(frozen=True)
class Photo:
    """One stored photo: its sha256 (hex), media type (``image/jpeg`` | ``image/png``), size in
    bytes, and from its EXIF block the time it was taken (``exif_time``: DateTimeOriginal as ISO
    8601, with OffsetTimeOriginal when the camera wrote it, else the camera's local time) and
    where (``exif_lat``, ``exif_lon``: decimal degrees, WGS 84, the datum GPS receivers give),
    None when the photo does not say."""

    sha256: str
    media_type: str
    size: int
    exif_time: str | None = None
    exif_lat: float | None = None
    exif_lon: float | None = None

    @property
    def name(self) -> str:
        """The file name in the store: ``<sha256>.jpg`` or ``<sha256>.png``."""
        return f"{self.sha256}{_SUFFIX[self.media_type]}"

    def record(self) -> dict[str, Any]:
        """The photo as a finding's payload lists it."""
        return {"sha256": self.sha256, "media_type": self.media_type, "bytes": self.size, "exif_time": self.exif_time,
                "exif_lat": self.exif_lat, "exif_lon": self.exif_lon}


def _position(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return round(lat, 7), round(lon, 7)  # 1e-7 degrees ≈ 1 cm


@dataclass(frozen=True)
class FieldFinding:
    """What a field check found, as the register records it (module docstring).

    Parameters
    ----------
    result
        One of :data:`redline.vocabulary.FIELD_RESULTS`: ``activity_found`` (human activity on
        the ground), ``nothing_found``, ``rectified`` (the site was already rectified).
    photos
        At most :data:`MAX_PHOTOS`, each stored first (:meth:`PhotoStore.put`).
    lat, lon, accuracy_m
        Where the browser was when the finding was recorded (WGS 84 degrees) and the accuracy
        it reported (metres, 95 % radius per the W3C Geolocation API); all None when not given.
    """

    result: str
    photos: tuple[Photo, ...] = ()
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None

    def __post_init__(self) -> None:
        if self.result not in FIELD_RESULTS:
            raise RegisterError(f"field result {self.result!r} is not one of {', '.join(FIELD_RESULTS)}")
        if len(self.photos) > MAX_PHOTOS:
            raise PhotoError(f"{len(self.photos)} photos: a finding carries at most {MAX_PHOTOS}")
        if (self.lat is None) != (self.lon is None) or (self.lat is not None and _position(self.lat, self.lon) is None):
            raise RegisterError(f"position {self.lat}, {self.lon}: give both latitude (-90…90) and longitude (-180…180) in degrees, or neither")
        if self.accuracy_m is not None and (self.lat is None or not math.isfinite(self.accuracy_m) or self.accuracy_m < 0):
            raise RegisterError(f"accuracy {self.accuracy_m}: give it in metres (≥ 0), with a position")

    def payload(self) -> dict[str, Any]:
        """``{"result", "position": {"lat", "lon", "accuracy_m"} | None, "photos": [Photo.record()]}``."""
        pos = None
        if self.lat is not None and self.lon is not None:
            lat, lon = _position(self.lat, self.lon)
            pos = {"lat": lat, "lon": lon, "accuracy_m": None if self.accuracy_m is None else round(self.accuracy_m, 1)}
        return {"result": self.result, "position": pos, "photos": [p.record() for p in self.photos]}


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip("\x00 ").strip() or None if isinstance(value, str) else None


def _exif_time(taken: object, offset: object) -> str | None:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` (+ ``±HH:MM``) as ISO 8601; None when absent or malformed."""
    text = _text(taken)
    if text is None:
        return None
    try:
        t = dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = _text(offset)
    if zone is not None and re.fullmatch(r"[+-]\d\d:\d\d", zone):
        return t.isoformat() + zone
    return t.isoformat()


def _degrees(dms: object, ref: object) -> float | None:
    """EXIF GPS degrees, minutes, seconds (three rationals) and N/S/E/W as signed decimal degrees."""
    try:
        d, m, s = (float(v) for v in dms)  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    if not math.isfinite(value):
        return None
    return -value if _text(ref) in ("S", "W") else value


def _exif(im: Image.Image) -> tuple[str | None, float | None, float | None]:
    """(DateTimeOriginal, latitude, longitude) from an image's EXIF block (JPEG APP1, PNG eXIf);
    Nones when it has none or it cannot be read (the photo itself is still a photo)."""
    try:
        return _exif_values(im)
    except _UNREADABLE:
        return None, None, None


def _exif_values(im: Image.Image) -> tuple[str | None, float | None, float | None]:
    exif = im.getexif()
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    taken = _exif_time(sub.get(ExifTags.Base.DateTimeOriginal), sub.get(ExifTags.Base.OffsetTimeOriginal))
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    pos = _position(_degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef)),
                    _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef)))
    return taken, *(pos if pos is not None else (None, None))


def inspect_photo(data: bytes, *, label: str = "the file") -> Photo:
    """The :class:`Photo` of ``data`` if it is a JPEG or PNG photo this register keeps, read by
    its content (``label`` names it in the error); else one-line :class:`PhotoError`
    (:class:`PhotoTooLarge` above :data:`MAX_PHOTO_BYTES`)."""
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoTooLarge(f"{label}: {len(data) / 2**20:.1f} MiB is more than the {MAX_PHOTO_BYTES // 2**20} MiB a photo may have; "
                            "send a smaller photo")
    if not data:
        raise PhotoError(f"{label}: empty; choose a JPEG or PNG photo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow only warns below 2 × its limit
            with Image.open(io.BytesIO(data), formats=tuple(MEDIA_TYPES)) as im:
                fmt = im.format
                im.verify()  # PNG chunk CRCs; must come straight after open
            with Image.open(io.BytesIO(data), formats=(fmt,)) as im:
                taken, lat, lon = _exif(im)
                if fmt == "JPEG":
                    im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))  # DCT scaling: every block decoded, 1/64 of the memory
                im.load()  # a truncated or corrupt stream fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError(f"{label}: more than {_MAX_PIXELS:,} pixels (a decompression bomb?); send a camera photo") from None
    except _UNREADABLE:
        raise PhotoError(f"{label}: not a JPEG or PNG photo (its content, whatever its name); choose a photo taken with a camera or phone") from None
    media_type, _ = MEDIA_TYPES[fmt]
    return Photo(sha256=hashlib.sha256(data).hexdigest(), media_type=media_type, size=len(data), exif_time=taken, exif_lat=lat, exif_lon=lon)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class PhotoStore:
    """The folder of a register's photos, each named by the sha256 of its bytes."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"PhotoStore({str(self.folder)!r})"

    def path_of(self, sha256: str, media_type: str) -> Path:
        """Where the photo ``sha256`` of ``media_type`` lies (whether or not it is there). Only a
        64-hex-digit name and a known type make a path: nothing from outside reaches the file system."""
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256) or media_type not in _SUFFIX:
            raise PhotoError(f"photo {str(sha256)[:70]!r} ({media_type}): not a sha256 and a photo type of this register")
        return self.folder / f"{sha256}{_SUFFIX[media_type]}"

    def put(self, data: bytes, *, label: str = "the file") -> Photo:
        """Check ``data`` (:func:`inspect_photo`) and store its bytes untouched under their
        sha256, atomically; a photo already stored intact is left as it is. Returns its record."""
        photo = inspect_photo(data, label=label)
        target = self.path_of(photo.sha256, photo.media_type)
        if target.is_file() and _sha256_file(target) == photo.sha256:
            return photo
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".upload-", suffix=".part")  # mode 0600
        except OSError as exc:
            raise RegisterError(f"{self.folder}: cannot store photos there ({exc.strerror}); check the folder's permissions") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
        return photo

    def problem(self, record: Mapping[str, Any]) -> str | None:
        """Why the photo a finding names is not intact (missing, or its bytes changed); None when it is."""
        try:
            path = self.path_of(str(record.get("sha256")), str(record.get("media_type")))
        except PhotoError as exc:
            return str(exc)
        if not path.is_file():
            return f"{path.name} is missing from {self.folder}"
        if _sha256_file(path) != record["sha256"]:
            return f"{path.name} was altered (its sha256 differs from the one signed)"
        return None


def default_photo_folder(location: Path | str) -> Path | None:
    """The photo folder of a GeoPackage register: ``<stem>-photos`` next to it
    (``OUT/register-photos`` for ``OUT/register.gpkg``); None for a ``postgresql://`` URL,
    whose folder is given (``--photos DIR``)."""
    if is_register_url(location):
        return None
    p = Path(location)
    return p.with_name(p.stem + PHOTOS_SUFFIX)


def _findings(chain: pd.DataFrame) -> Iterator[tuple[int, str, dict[str, Any]]]:
    for row in chain.to_dict("records"):
        text = row.get("payload")
        if row.get("kind") not in (None, "review") or not isinstance(text, str) or '"field"' not in text:
            continue
        try:
            payload = json.loads(text)
        except ValueError:  # the chain check names an edited entry
            continue
        if isinstance(payload, dict) and isinstance(payload.get("field"), dict):
            yield int(row["seq"]), str(row["alert_id"]), payload["field"]


def photo_records(chain: pd.DataFrame) -> list[tuple[int, str, dict[str, Any]]]:
    """(entry seq, alert id, photo record) of every photo the history's findings name, in history order."""
    return [(seq, aid, p if isinstance(p, dict) else {}) for seq, aid, f in _findings(chain) for p in (f.get("photos") or [])]


@dataclass
class PhotoCheck:
    """What :func:`verify_photos` found: photos named, photos intact, and one line per problem."""

    named: int = 0
    intact: int = 0
    problems: list[str] = field(default_factory=list)


def verify_photos(chain: pd.DataFrame, folder: Path | str | None, *, where: str = "") -> PhotoCheck:
    """Check every photo the findings of ``chain`` name against the store in ``folder``
    (present, sha256 unchanged). With photos named and no folder (a ``postgresql://`` register
    checked without ``--photos``), that is one problem: never a silent skip."""
    named = photo_records(chain)
    check = PhotoCheck(named=len(named))
    if not named:
        return check
    if folder is None:
        check.problems.append(f"photos: the history names {len(named)} photo(s) but no photo folder was given{where}; give --photos DIR")
        return check
    store = PhotoStore(folder)
    for seq, aid, rec in named:
        problem = store.problem(rec)
        if problem is None:
            check.intact += 1
        else:
            check.problems.append(f"photos: photo of alert {aid} (entry seq {seq}): {problem}")
    return check
