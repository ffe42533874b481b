"""The scan configuration (``scan.yml``, docs/architecture.md §4.2) as pydantic models.

Every problem is reported as one :class:`~redline.errors.ConfigError` line naming the file,
the key path and the value, and what to do. Relative paths are resolved against the folder of
the config file.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from redline.errors import ConfigError
from redline.outputs import register_location

__all__ = [
    "ScanConfig",
    "StacConfig",
    "ZonesConfig",
    "AdminUnitsConfig",
    "Window",
    "DetectionConfig",
    "DaskConfig",
    "ReviewConfig",
    "AssessConfig",
    "load_config",
    "PROFILES",
]

#: Known STAC profiles (docs/architecture.md §4.2; defaults in :data:`pipelines.PROFILES`).
#: ``embedded`` is the loopback API of ``redline demo``; ``generic`` (or no profile) is any
#: STAC API.
PROFILES = ("embedded", "earth-search", "planetary-computer", "landsat", "generic")

_Strict = ConfigDict(extra="forbid", frozen=True)

#: The Sentinel-2 L2A Scene Classification (SCL) classes, 0-11 (ESA Sentinel-2 L2A Product
#: Specification, S2-PDGS-MPC-L2A-PDD, table "SCL"; the legend: ``indices.SCL_CLASSES``, not
#: imported here to keep the config light to import).
SCL_CLASS_CODES = range(0, 12)


class StacConfig(BaseModel):
    """Where scenes come from. ``url`` and ``collections`` default to the profile's
    (:data:`pipelines.PROFILES`) when omitted."""

    model_config = _Strict
    url: str | None = None
    profile: Literal["embedded", "earth-search", "planetary-computer", "landsat", "generic"] | None = None
    collections: list[str] = Field(default_factory=lambda: ["sentinel-2-c1-l2a"], min_length=1)
    max_cloud_cover: float = Field(80.0, ge=0, le=100, description="scene-level filter, percent")
    timeout_s: float = Field(60.0, gt=0, le=600, description="read timeout of one STAC API request, seconds (retried twice)")

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("profile") not in PROFILES:
            return data
        from pipelines import get_profile  # imported here: the config module stays light to import

        prof = get_profile(data["profile"])
        filled = dict(data)
        if filled.get("url") is None and prof.url is not None:
            filled["url"] = prof.url
        if filled.get("collections") is None:
            filled["collections"] = list(prof.collections)
        return filled


class ZonesConfig(BaseModel):
    """The red-line zones layer and its fields."""

    model_config = _Strict
    path: Path
    layer: str | None = None
    id_field: str
    name_field: str | None = None
    category_field: str | None = None
    admin_field: str | None = None
    tier_field: str | None = None


class AdminUnitsConfig(BaseModel):
    """The administrative units (counties) for per-unit assessment."""

    model_config = _Strict
    path: Path
    layer: str | None = None
    id_field: str
    name_field: str | None = None


class Window(BaseModel):
    """A date window, both ends inclusive. ``end: today`` is resolved to the current date."""

    model_config = _Strict
    start: dt.date
    end: dt.date

    @field_validator("end", mode="before")
    @classmethod
    def _today(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "today":
            return dt.date.today()
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}; swap them")
        return self


class DetectionConfig(BaseModel):
    """Knobs of the disturbance detector (defaults and their sources in :mod:`redline.detect`)."""

    model_config = _Strict
    min_area_m2: float = Field(5000.0, gt=0, description="minimum mapping unit of an alert, m²")
    z_threshold: float = Field(4.0, gt=0, description="standardised residual beyond which an observation is anomalous (see redline.detect)")
    consecutive: int = Field(2, ge=1, le=10, description="consecutive anomalous clear observations that confirm")
    harmonics: int = Field(2, ge=1, le=3, description="annual harmonic terms (2: annual + semi-annual)")
    trend: bool = Field(False, description="add a linear trend term to the baseline model")
    indices: list[Literal["NDVI", "MNDWI", "NBR"]] = Field(default_factory=lambda: ["NDVI", "MNDWI", "NBR"])
    mask_dilation_m: float = Field(0.0, ge=0, le=500, description="grow the cloud/shadow mask by this distance, m")
    scl_mask_classes: list[int] = Field(default_factory=lambda: [0, 1, 3, 8, 9, 10, 11])
    min_baseline_obs: int = Field(12, ge=4, description="clear baseline observations a pixel needs to be monitored")

    @field_validator("scl_mask_classes")
    @classmethod
    def _scl_classes(cls, value: list[int]) -> list[int]:
        # ESA Sentinel-2 L2A Product Specification (S2-PDGS-MPC-L2A-PDD), table "SCL": classes 0-11
        # (indices.SCL_CLASSES); another number masks nothing and would pass unnoticed
        wrong = [c for c in value if c not in SCL_CLASS_CODES]
        if wrong:
            raise ValueError(f"{wrong[0]} is not a Sentinel-2 SCL class; use classes 0-11 (0 no data, 1 saturated, 3 cloud shadow, "
                             "8/9 cloud medium/high, 10 cirrus, 11 snow; README: config reference)")
        return value

    @property
    def model_terms(self) -> int:
        """Terms of the baseline model: 1 + 2·harmonics (+1 with the trend)."""
        return 1 + 2 * self.harmonics + (1 if self.trend else 0)

    @model_validator(mode="after")
    def _enough_looks_for_the_model(self) -> "DetectionConfig":
        # with no more looks than terms the model fits them exactly: no residual spread at all
        terms = self.model_terms
        if self.min_baseline_obs <= terms:
            raise ValueError(f"min_baseline_obs {self.min_baseline_obs} is too few for the model's {terms} terms (harmonics: {self.harmonics}"
                             f"{', trend' if self.trend else ''}); set detection.min_baseline_obs to at least {terms + 1} or lower detection.harmonics")
        return self


class ReviewConfig(BaseModel):
    """The review workflow: which of the three review levels (自检 self_check, 专检
    specialist_check, 验收 acceptance) an alert needs, in order, before it can be confirmed.
    A team that works with one level lists only that one."""

    model_config = _Strict
    steps: list[Literal["self_check", "specialist_check", "acceptance"]] = Field(
        default_factory=lambda: ["self_check", "specialist_check", "acceptance"], min_length=1
    )

    @field_validator("steps")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a review step is listed twice; list each step once, in order")
        return value
LandTypeCode = Literal[
    "forest", "shrubland", "sparse_forest", "grassland_high", "grassland_medium", "grassland_low", "river", "lake_reservoir",
    "tidal_flat", "marsh", "glacier_snow", "paddy", "dryland", "urban", "rural_settlement", "other_built", "sand", "saline",
    "bare_soil", "bare_rock", "other_unused",
]  # the land types of HJ 192-2015 (redline.assess.ei.LAND_TYPES)


class AssessConfig(BaseModel):
    """Optional inputs of the assessment: the HJ 192-2015 EI per county (:mod:`redline.assess.ei`)."""

    model_config = _Strict
    land_cover: Path | None = None
    land_cover_classes: dict[int, LandTypeCode] = Field(default_factory=dict, description="land-cover code → HJ 192-2015 land type")
    rivers: Path | None = None
    county_table: Path | None = None

    @model_validator(mode="after")
    def _classes(self) -> "AssessConfig":
        if self.land_cover is not None and not self.land_cover_classes:
            raise ValueError("land_cover is given without land_cover_classes; map each code to a land type, e.g. {1: forest, 2: paddy}")
        return self


def machine_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


class DaskConfig(BaseModel):
    """Where the graph runs: a LocalCluster (``address: null``) or an existing scheduler."""

    model_config = _Strict
    address: str | None = None
    workers: int = Field(default_factory=machine_cores, ge=1,
                         description="LocalCluster workers; default: the cores this process may use")
    threads_per_worker: int = Field(1, ge=1)
    processes: bool = Field(False, description="LocalCluster workers as separate processes (true) or as threads of the scan's process (false)")


class TilingConfig(BaseModel):
    """Processing tiles (:mod:`redline.tiles`): peak memory follows the tile, not the region."""

    model_config = _Strict
    max_tile_px: int = Field(1024, ge=32, le=16384, description="tile edge in analysis pixels (1024 = 10.24 km at 10 m)")
    in_flight: int = Field(1, ge=1, le=64, description="tiles computing on the cluster at once (1: one computes while the previous one is written; 2: two compute, ×2 memory)")


class IoConfig(BaseModel):
    """How the scenes are read (docs/architecture.md §1, "Reads at internet latency")."""

    model_config = _Strict
    # 32 in flight: an object store answers each range request in 50–150 ms whatever the load
    # (benchmarks/README.md, "Latency"); 256 is far past what one host's connection pool serves
    # (curl's default pool is 5 connections per host, HTTP/2 multiplexes ~100 streams, RFC 9113 §6.5.2)
    concurrency: int = Field(32, description="remote range requests in flight per worker process, independent of the compute threads (1-256)")

    @field_validator("concurrency", mode="after")
    @classmethod
    def _sane(cls, v: int) -> int:
        if not 1 <= v <= 256:
            raise ValueError("must be 1-256 range requests in flight per worker; use 32 for object storage (the default), fewer for a small server")
        return v


class ResourcesConfig(BaseModel):
    """What the scan may use of the machine (:mod:`redline.budget`)."""

    model_config = _Strict
    memory_limit: str | int | None = Field(
        None, description="peak memory the scan sizes its tiles for: bytes or a size such as 1GB, 1.5GiB, 800MB, 2e9; "
                          "default half the machine's available memory (on a Dask cluster: its workers' memory_limit)")

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            from redline.budget import parse_memory_limit  # imported here: the config module stays light to import

            try:
                parse_memory_limit(value)
            except ConfigError:
                raise ValueError("not a positive memory size; give e.g. 1GB, 1.5GiB, 800MB or 2e9 (bytes)") from None
        return value

    @property
    def memory_limit_bytes(self) -> int | None:
        """The limit in bytes (None: not set)."""
        from redline.budget import parse_memory_limit

        return None if self.memory_limit is None else parse_memory_limit(self.memory_limit)


class OutputsConfig(BaseModel):
    """What the scan renders for reviewers (maps: figures, map, report)."""

    model_config = _Strict
    zone_figures: Literal["changed", "all", "none"] = Field(
        "changed", description="per-zone figures drawn by the scan: zones with alerts or a changed RSEI grade, the zonal mean moved by ≥ 0.01 (changed), every zone (all) "
                               "or none; the others are drawn on demand (review service, `redline map OUT --zone-figures all`)")


class ScanConfig(BaseModel):
    """A whole scan (docs/architecture.md §4.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    stac: StacConfig = Field(default_factory=StacConfig)
    zones: ZonesConfig
    admin_units: AdminUnitsConfig | None = None
    baseline: Window
    monitor: Window
    resolution: float = Field(10.0, gt=0, le=1000, description="analysis grid, metres")
    masks: Literal["required", "assume-clear"] = Field(
        "required", description="scenes without a quality-mask asset: refused (required) or clear wherever they have data (assume-clear)")
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    register_path: Path | str | None = Field(None, alias="register", description="alert register: a GeoPackage path or a postgresql:// URL")
    dask: DaskConfig = Field(default_factory=DaskConfig)
    tiling: TilingConfig = Field(default_factory=TilingConfig)
    io: IoConfig = Field(default_factory=IoConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    assess: AssessConfig = Field(default_factory=AssessConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    _source: Path | None = PrivateAttr(default=None)  # the file it was read from (load_config), for messages

    @property
    def source(self) -> Path | None:
        """The config file this was read from (:func:`load_config`), else None."""
        return self._source

    @field_validator("register_path", mode="after")
    @classmethod
    def _register_location(cls, v: Path | str | None) -> Path | str | None:
        """A ``postgresql://`` URL stays a string; anything else is a path."""
        return None if v is None else register_location(v)

    @model_validator(mode="after")
    def _windows(self) -> "ScanConfig":
        if self.monitor.start <= self.baseline.end:
            raise ValueError(
                f"the monitor window {self.monitor.start} to {self.monitor.end} overlaps the baseline window {self.baseline.start} to "
                f"{self.baseline.end}: monitor.start {self.monitor.start} must be after baseline.end {self.baseline.end}; move one of them"
            )
        return self

    def resolve_paths(self, base: Path) -> "ScanConfig":
        """Return a copy with relative paths made absolute against ``base`` (the config folder)."""

        def _abs(p: Path | None) -> Path | None:
            if p is None:
                return None
            p = Path(p).expanduser()
            return p if p.is_absolute() else (base / p).resolve()

        update: dict[str, Any] = {"zones": self.zones.model_copy(update={"path": _abs(self.zones.path)})}
        if self.admin_units is not None:
            update["admin_units"] = self.admin_units.model_copy(update={"path": _abs(self.admin_units.path)})
        if isinstance(self.register_path, Path):
            update["register_path"] = _abs(self.register_path)
        update["assess"] = self.assess.model_copy(update={k: _abs(getattr(self.assess, k)) for k in ("land_cover", "rivers", "county_table")})
        return self.model_copy(update=update)


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith(("function-", "literal["))))


def _one_line(path: Path, err: ValidationError, raw: dict[str, Any]) -> str:
    e = err.errors()[0]
    key = _key_path(e["loc"]) or "(top level)"
    kind = e["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key '{key}'; remove it or check its spelling (see README, config reference)"
    if kind == "missing":
        return f"{path}: missing required key '{key}'; add it (see README, config reference)"
    msg = e["msg"].removeprefix("Value error, ")
    if kind == "value_error" and not e["loc"]:  # a rule across sections names its keys and values itself
        return f"{path}: {msg}"
    value = raw
    for part in e["loc"]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            value = e.get("input")
            break
    if kind == "value_error" and isinstance(value, dict):  # a section's own rule (e.g. a window's end before its start)
        return f"{path}: {key}: {msg}"
    return f"{path}: {key} = {value!r}: {msg}"


def load_config(path: Path | str, *, overrides: dict[str, Any] | None = None) -> ScanConfig:
    """Read, validate and resolve a ``scan.yml``.

    Parameters
    ----------
    path
        The YAML file. Relative paths inside it are resolved against its folder.
    overrides
        Top-level keys merged over the file's content (one level deep for mappings), e.g.
        ``{"stac": {"url": "http://127.0.0.1:8080"}}`` from the CLI.

    Raises
    ------
    ConfigError
        One line naming the file, the key and the value, and what to do.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.__class__.__name__}: {exc}); check permissions and encoding (UTF-8)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}; fix the syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (name, stac, zones, baseline, monitor …), got {type(raw).__name__}")
    for key in ("baseline", "monitor"):
        if key in raw and not raw[key]:
            raise ConfigError(f"{path}: {key} = {raw[key]!r} is an empty date window; give {key}: {{start: YYYY-MM-DD, end: YYYY-MM-DD}}")
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    try:
        cfg = ScanConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_one_line(path, err, raw)) from None
    cfg = cfg.resolve_paths(path.parent.resolve())
    cfg._source = path
    return cfg
