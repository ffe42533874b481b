"""STAC profiles: what differs between catalogues that a scan must know before it searches.

A profile gives the default API URL and collections (used when the config omits them) and
how asset hrefs are made readable (signing, alternate hrefs). How DN become reflectance and
which asset holds which band are decided per item from its metadata
(:func:`pipelines._bands.parse_item`), so a ``generic`` profile pointed at a mirror of one
of these catalogues loads the same physical quantity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from redline.errors import StacError

__all__ = ["Profile", "PROFILES", "get_profile", "pc_signer"]

#: A function that turns an asset href into a readable one (e.g. adds a SAS token).
HrefSigner = Callable[[str], str]


def pc_signer(href: str) -> str:
    """Sign a Planetary Computer blob-storage href with a SAS token (``planetary-computer``
    package; tokens are fetched from the PC token API and cached per storage container).
    Hrefs outside PC storage are returned unchanged."""
    import planetary_computer

    return planetary_computer.sign(href)


@dataclass(frozen=True)
class Profile:
    """One STAC catalogue's conventions.

    Attributes
    ----------
    name
        ``embedded``, ``earth-search``, ``planetary-computer``, ``landsat`` or ``generic``.
    url
        Default API root (``None``: must be given; the embedded API's URL is only known once
        it runs).
    collections
        Default collection ids.
    signer
        Applied to every asset href before it is read (at read time, on the workers).
    alternate_href
        Name of an ``alternate`` href to read instead of ``href`` (USGS: ``s3``).
    gdal_env
        GDAL settings this catalogue's assets need (applied with the common COG settings).
    """

    name: str
    url: str | None
    collections: tuple[str, ...]
    signer: HrefSigner | None = None
    alternate_href: str | None = None
    gdal_env: dict[str, str] = field(default_factory=dict)
    description: str = ""


PROFILES: dict[str, Profile] = {
    "embedded": Profile(
        "embedded", None, ("sentinel-2-c1-l2a",),
        description="the loopback STAC API of `redline demo` / `redline stac serve` over local COGs",
    ),
    "earth-search": Profile(
        "earth-search", "https://earth-search.aws.element84.com/v1", ("sentinel-2-c1-l2a",),
        description="Element 84 Earth Search v1 (sentinel-2-c1-l2a, sentinel-2-l2a, landsat-c2-l2); public COGs",
    ),
    "planetary-computer": Profile(
        "planetary-computer", "https://planetarycomputer.microsoft.com/api/stac/v1", ("sentinel-2-l2a",),
        signer=pc_signer,
        description="Microsoft Planetary Computer (sentinel-2-l2a, landsat-c2-l2); hrefs signed with SAS tokens",
    ),
    "landsat": Profile(
        "landsat", "https://landsatlook.usgs.gov/stac-server", ("landsat-c2l2-sr",),
        alternate_href="s3", gdal_env={"AWS_REQUEST_PAYER": "requester"},
        description="USGS LandsatLook STAC (landsat-c2l2-sr); assets read from the requester-pays s3://usgs-landsat bucket",
    ),
    "generic": Profile("generic", None, ("sentinel-2-c1-l2a",), description="any STAC API; conventions read from each item"),
}


def get_profile(name: str | None) -> Profile:
    """The :class:`Profile` called ``name`` (``None``: ``generic``)."""
    if name is None:
        return PROFILES["generic"]
    try:
        return PROFILES[name]
    except KeyError:
        raise StacError(f"stac.profile {name!r} is not known; use one of {', '.join(PROFILES)}") from None
