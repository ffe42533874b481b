"""Ecological index EI (生态环境状况指数) of HJ 192-2015 《生态环境状况评价技术规范》, per county.

EI = 0.35·生物丰度 + 0.25·植被覆盖 + 0.15·水网密度 + 0.15·(100 − 土地胁迫) + 0.10·(100 − 污染负荷)
+ 环境限制 (HJ 192-2015 §5.2), graded 优 ≥ 75, 良 55–75, 一般 35–55, 较差 20–35, 差 < 20 (§5.3).

Sub-indices (each clipped to 0–100, as the standard caps normalised indices at 100):

- **生物丰度** (biological richness) = (BI + HQ) / 2, with BI the biodiversity index of the county
  (HJ 623) from the user's table; without BI the standard uses the habitat-quality change alone,
  so redline reports HQ and says so (``ei_bio_basis``). HQ (生境质量指数) =
  A_bio · Σ w_class · w_sub · area_sub / area, from the land-cover raster (:data:`LAND_TYPES`).
- **植被覆盖** (vegetation cover) = A_veg · mean NDVI over the county (growing-season NDVI of the
  monitor window, the scan's ``ndvi_monitor``; pixels without a clear observation left out).
- **水网密度** (water network density) = (A_riv · river length / area + A_lak · water area / area
  + A_res · water resources / area) / 3. River length (km) from a line layer (``assess.rivers``),
  water area (km², lakes, reservoirs and river channels, 湖泊、水库、河渠) from the land cover, water
  resources (水资源量) from the user's table. A term whose input is not given counts 0 and is
  named in ``ei_water_network_terms`` (what was used), never estimated.
- **土地胁迫** (land stress) = A_ero · (0.4·severe erosion + 0.2·moderate erosion + 0.2·built-up
  + 0.2·other stress) / area. Built-up land from the land cover; erosion and other stress areas
  (km²) from the user's table; terms used in ``ei_land_stress_terms``.
- **污染负荷** (pollution load, 0–100) and **环境限制** (environmental restriction, points added to
  EI; the standard's constraint table lowers the grade for serious events, give the points that
  apply) come only from the user's table. Without them EI is NaN and ``ei_missing`` names what
  is missing: they are never invented.

Normalisation coefficients (A = 100 / the reference maximum of the raw value). The values below
are those of HJ/T 192-2006 Annex B, which HJ 192-2015 keeps for these indices; they are
reproduced in county-EI software and papers (e.g. A_bio 511.2642131067 and the sub-weights of
:data:`LAND_TYPES`). The 2015 text itself was not available to the author: check them against
your copy; each is a named constant. A_VEG in particular is stated for NDVI in 0–1 (the
standard applies A_veg to its own NDVI product); override it if your reference differs.
Areas are km², lengths km, water resources 10⁶ m³ (unit inferred from A_res: 100 at ≈1.16 × 10⁶
m³ km⁻², a runoff depth of ≈1.2 m; check your copy).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio.errors
from exactextract import exact_extract

from redline.errors import ConfigError

if TYPE_CHECKING:
    from redline.config import AssessConfig

__all__ = [
    "A_BIO",
    "A_VEG",
    "A_RIV",
    "A_LAK",
    "A_RES",
    "A_ERO",
    "EI_WEIGHTS",
    "EI_GRADES",
    "LAND_TYPES",
    "TABLE_COLUMNS",
    "EI_COLUMNS",
    "LandType",
    "ei_grade",
    "read_county_table",
    "check_land_cover_classes",
    "check_inputs",
    "read_rivers",
    "county_ei",
]

log = logging.getLogger(__name__)

#: 生境质量指数 normalisation coefficient (HJ/T 192-2006 Annex B; kept by HJ 192-2015).
A_BIO = 511.2642131067
#: 植被覆盖指数 coefficient per unit NDVI (0–1). HJ 192-2015 §B.2: 植被覆盖指数 = A_veg · mean NDVI;
#: 121.165124 = 0.0121165124 per NDVI × 10⁴ (the MODIS NDVI scaling), our reading of the standard's
#: reference value, not checked against the text here: a named parameter, override if needed.
A_VEG = 121.165124
#: 水网密度 coefficients: river length, water area, water resources (HJ/T 192-2006 Annex B).
A_RIV = 84.3704083981
A_LAK = 591.7908642005
A_RES = 86.3869548281
#: 土地胁迫 coefficient (HJ/T 192-2006 Annex B).
A_ERO = 236.0435677948
#: 土地胁迫 weights: severe erosion, moderate erosion, built-up land, other stress.
STRESS_WEIGHTS = {"erosion_severe_km2": 0.4, "erosion_moderate_km2": 0.2, "built": 0.2, "other_stress_km2": 0.2}
#: EI weights (HJ 192-2015 §5.2).
EI_WEIGHTS = {"bio": 0.35, "veg": 0.25, "water": 0.15, "stress": 0.15, "pollution": 0.10}
#: Grade lower bounds (HJ 192-2015 §5.3): ≥ 75 优, 55–75 良, 35–55 一般, 20–35 较差, < 20 差.
EI_GRADES = ((75.0, "优"), (55.0, "良"), (35.0, "一般"), (20.0, "较差"), (-np.inf, "差"))


@dataclass(frozen=True)
class LandType:
    """A land type of the standard: first-level class, its weight in HQ, the second-level
    name and its weight within the class."""

    group: str
    group_weight: float
    name: str
    weight: float


#: HQ weights (HJ/T 192-2006 Table 1, carried into HJ 192-2015 生境质量指数): class weights
#: 林地 0.35, 草地 0.21, 水域湿地 0.28, 耕地 0.11, 建设用地 0.04, 未利用地 0.01; sub-weights within
#: each class as listed. Keys are the codes used in ``assess.land_cover_classes``.
LAND_TYPES: dict[str, LandType] = {
    "forest": LandType("林地", 0.35, "有林地", 0.60),
    "shrubland": LandType("林地", 0.35, "灌木林地", 0.25),
    "sparse_forest": LandType("林地", 0.35, "疏林地和其他林地", 0.15),
    "grassland_high": LandType("草地", 0.21, "高覆盖度草地", 0.60),
    "grassland_medium": LandType("草地", 0.21, "中覆盖度草地", 0.30),
    "grassland_low": LandType("草地", 0.21, "低覆盖度草地", 0.10),
    "river": LandType("水域湿地", 0.28, "河流(河渠)", 0.10),
    "lake_reservoir": LandType("水域湿地", 0.28, "湖泊(库)", 0.30),
    "tidal_flat": LandType("水域湿地", 0.28, "滩涂湿地", 0.50),
    "marsh": LandType("水域湿地", 0.28, "沼泽", 0.50),
    "glacier_snow": LandType("水域湿地", 0.28, "永久性冰川雪地", 0.10),
    "paddy": LandType("耕地", 0.11, "水田", 0.60),
    "dryland": LandType("耕地", 0.11, "旱地", 0.40),
    "urban": LandType("建设用地", 0.04, "城镇建设用地", 0.30),
    "rural_settlement": LandType("建设用地", 0.04, "农村居民点", 0.40),
    "other_built": LandType("建设用地", 0.04, "其他建设用地", 0.30),
    "sand": LandType("未利用地", 0.01, "沙地", 0.20),
    "saline": LandType("未利用地", 0.01, "盐碱地", 0.30),
    "bare_soil": LandType("未利用地", 0.01, "裸土地", 0.20),
    "bare_rock": LandType("未利用地", 0.01, "裸岩石砾", 0.20),
    "other_unused": LandType("未利用地", 0.01, "其他未利用地", 0.10),
}
#: Land types whose area is the 水域面积 term of 水网密度 (湖泊、水库、河渠).
WATER_AREA_TYPES = ("lake_reservoir", "river")
#: Land types whose area is the built-up term of 土地胁迫.
BUILT_TYPES = ("urban", "rural_settlement", "other_built")

#: Columns the user's county table may have (besides ``admin_id``), with their meaning.
TABLE_COLUMNS = {
    "pollution_load": "污染负荷指数 (0–100), HJ 192-2015 §B.5",
    "env_restriction": "环境限制指数: points added to EI (0 when no restriction applies)",
    "water_resources_1e6m3": "水资源量, 10⁶ m³",
    "erosion_severe_km2": "重度及以上土壤侵蚀面积, km²",
    "erosion_moderate_km2": "中度土壤侵蚀面积, km²",
    "other_stress_km2": "其他土地胁迫面积, km²",
    "biodiversity_index": "生物多样性指数 BI (0–100, HJ 623)",
}
#: Output columns, in order.
EI_COLUMNS = [
    "ei_area_km2", "ei_habitat_quality", "ei_bio", "ei_bio_basis", "ei_veg", "ei_water_network", "ei_water_network_terms",
    "ei_land_stress", "ei_land_stress_terms", "ei_pollution_load", "ei_env_restriction", "ei", "ei_grade", "ei_missing",
]


def ei_grade(ei: float) -> str | None:
    """HJ 192-2015 grade of an EI value; None for NaN."""
    if ei is None or not np.isfinite(ei):
        return None
    return next(name for lower, name in EI_GRADES if ei >= lower)


def read_county_table(path: Path) -> pd.DataFrame:
    """The user's county table (CSV, UTF-8): ``admin_id`` and any of :data:`TABLE_COLUMNS`.

    Raises :class:`~redline.errors.ConfigError` naming the file and the column for a missing
    ``admin_id``, an unknown column, a non-numeric value or a duplicate id."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"admin_id": str}, encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: assess.county_table not found; check the path") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: assess.county_table cannot be read as a UTF-8 CSV ({exc}); save it as CSV UTF-8") from None
    if "admin_id" not in df:
        raise ConfigError(f"{path}: assess.county_table has no 'admin_id' column; add the county codes (as admin_units.id_field)")
    unknown = [c for c in df.columns if c != "admin_id" and c not in TABLE_COLUMNS]
    if unknown:
        raise ConfigError(f"{path}: assess.county_table column '{unknown[0]}' is unknown; use admin_id and any of: {', '.join(TABLE_COLUMNS)}")
    df["admin_id"] = df["admin_id"].astype(str).str.strip()
    dup = df["admin_id"][df["admin_id"].duplicated()]
    if not dup.empty:
        raise ConfigError(f"{path}: assess.county_table has admin_id '{dup.iloc[0]}' twice; one row per county")
    for c in df.columns.drop("admin_id"):
        bad = pd.to_numeric(df[c], errors="coerce").isna() & df[c].notna()
        if bad.any():
            raise ConfigError(f"{path}: assess.county_table column '{c}' = {df.loc[bad.idxmax(), c]!r} (admin_id {df.loc[bad.idxmax(), 'admin_id']}) is not a number")
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def check_land_cover_classes(path: Path, classes: dict[int, str]) -> None:
    """One-line :class:`ConfigError` when ``assess.land_cover`` cannot be opened or is not a
    single-band integer raster (class codes are mapped by ``assess.land_cover_classes``)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            dtype, count, crs = src.dtypes[0], src.count, src.crs
    except rasterio.errors.RasterioIOError as exc:
        raise ConfigError(f"{path}: assess.land_cover cannot be opened ({' '.join(str(exc).split())[:160]}); give a GeoTIFF of land-cover class codes") from None
    if count != 1 or not np.issubdtype(np.dtype(dtype), np.integer):
        raise ConfigError(f"{path}: assess.land_cover has {count} band(s) of {dtype}; give one band of integer class codes")
    if crs is None:
        raise ConfigError(f"{path}: assess.land_cover has no CRS; define it in the file")


def read_rivers(path: Path) -> gpd.GeoDataFrame:
    """River centre lines (``assess.rivers``); a one-line :class:`ConfigError` when the file
    cannot be read, has no CRS or holds no lines."""
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except (OSError, ValueError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise ConfigError(f"{path}: assess.rivers cannot be read ({' '.join(str(exc).split())[:160]}); give a line layer (GeoPackage, Shapefile, GeoJSON)") from None
    if gdf.crs is None:
        raise ConfigError(f"{path}: assess.rivers has no CRS; define it in the file")
    if gdf.empty or not gdf.geometry.geom_type.isin(["LineString", "MultiLineString"]).all():
        raise ConfigError(f"{path}: assess.rivers must be a non-empty layer of (Multi)LineStrings (river centre lines)")
    return gdf


def check_inputs(assess: AssessConfig) -> tuple[gpd.GeoDataFrame | None, pd.DataFrame | None]:
    """Check the EI inputs of ``assess`` before a scan computes anything; returns the rivers
    and the county table (None when not given)."""
    if assess.land_cover is None:
        return None, None
    check_land_cover_classes(assess.land_cover, dict(assess.land_cover_classes))
    rivers = read_rivers(assess.rivers) if assess.rivers is not None else None
    table = read_county_table(assess.county_table) if assess.county_table is not None else None
    return rivers, table


def _shares(land_cover: Path, polys: gpd.GeoDataFrame, key: str, classes: dict[int, str]) -> pd.DataFrame:
    """Coverage-weighted area share (0–1) of each standard land type among the mapped land-cover
    pixels of each polygon (exactextract ``unique`` + ``frac``). Codes that are not mapped are
    left out (with a warning): they count neither as a land type nor in the area."""
    import rasterio

    with rasterio.open(land_cover) as src:
        crs = src.crs
    stats = exact_extract(str(land_cover), polys[[key, "geometry"]].to_crs(crs), ["unique", "frac"], include_cols=[key], output="pandas")
    rows, unmapped = [], set()
    for r in stats.itertuples(index=False):
        fr: dict[str, float] = {t: 0.0 for t in LAND_TYPES}
        codes = np.asarray(r.unique, dtype=int).tolist()
        fracs = np.asarray(r.frac, dtype=float).tolist()
        mapped = sum(f for c, f in zip(codes, fracs) if c in classes)
        for c, f in zip(codes, fracs):
            if c in classes:
                fr[classes[c]] += f / mapped if mapped > 0 else 0.0
            else:
                unmapped.add(c)
        rows.append({key: getattr(r, key), **fr, "_mapped": mapped > 0})
    if unmapped:
        log.warning("%s: land-cover codes %s are not in assess.land_cover_classes; left out of the EI areas", land_cover, sorted(unmapped))
    return pd.DataFrame(rows)


def county_ei(
    units: gpd.GeoDataFrame,
    key: str,
    *,
    land_cover: Path,
    classes: dict[int, str],
    ndvi: Path,
    rivers: gpd.GeoDataFrame | None = None,
    table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """EI and its sub-indices per unit (module docstring gives the method and coefficients).

    Parameters
    ----------
    units
        Counties (or other units) in a metric CRS (areas in m²), column ``key``.
    land_cover
        Single-band integer land-cover raster (any CRS); ``classes`` maps its codes to
        :data:`LAND_TYPES` keys.
    ndvi
        NDVI raster (0–1, NaN = no data), e.g. the scan's ``rasters/ndvi_monitor.tif``.
    rivers
        River centre lines (any CRS) for the river-length term, or None.
    table
        The user's county table (:func:`read_county_table`) with ``admin_id`` = ``key`` values.

    Returns
    -------
    pandas.DataFrame
        ``key`` and :data:`EI_COLUMNS`: ``ei_area_km2`` (the unit's area, km², the 区域面积 of
        the length and table terms; area shares of land types are taken among the unit's
        mapped land-cover pixels, so a raster that covers only part of a unit gives that
        part's shares),
        ``ei_habitat_quality`` (HQ), the sub-indices (0–100), ``ei`` (NaN when 污染负荷 or 环境限制
        is missing), ``ei_grade`` (优 … 差), ``ei_missing`` (missing inputs, ``;``-separated).
    """
    out = units[[key]].copy().reset_index(drop=True)
    area_km2 = (units.geometry.area / 1e6).to_numpy(dtype=float)
    out["ei_area_km2"] = area_km2.round(4)
    shares = out[[key]].merge(_shares(land_cover, units, key, classes), on=key, how="left")
    hq = A_BIO * sum(lt.group_weight * lt.weight * shares[t].fillna(0.0) for t, lt in LAND_TYPES.items())
    hq = np.where(shares["_mapped"].fillna(False).astype(bool), hq, np.nan)
    tab = out[[key]].merge(table.rename(columns={"admin_id": key}), on=key, how="left") if table is not None else out[[key]].copy()

    def col(name: str) -> pd.Series:
        return tab[name] if name in tab else pd.Series(np.nan, index=tab.index)

    bi = col("biodiversity_index")
    out["ei_habitat_quality"] = np.clip(hq, 0, 100)
    out["ei_bio"] = np.where(bi.notna(), (np.clip(bi, 0, 100) + out["ei_habitat_quality"]) / 2, out["ei_habitat_quality"])
    out["ei_bio_basis"] = np.where(bi.notna(), "(BI + HQ) / 2", "HQ (habitat quality; no biodiversity_index given)")

    veg = exact_extract(str(ndvi), units[[key, "geometry"]], ["mean"], include_cols=[key], output="pandas")
    out["ei_veg"] = np.clip(A_VEG * out[[key]].merge(veg, on=key, how="left")["mean"].astype(float), 0, 100)

    terms_w, parts = [], np.zeros(len(out))
    if rivers is not None:
        lines = rivers.to_crs(units.crs)
        length_km = np.array([lines.geometry.intersection(g).length.sum() / 1000.0 for g in units.geometry])
        parts += A_RIV * length_km / area_km2
        terms_w.append("river length")
    water_share = sum(shares[t].fillna(0.0) for t in WATER_AREA_TYPES).to_numpy(dtype=float)
    parts += A_LAK * water_share
    terms_w.append("water area")
    res = col("water_resources_1e6m3").to_numpy(dtype=float)
    out["ei_water_network"] = np.clip((parts + A_RES * np.nan_to_num(res) / area_km2) / 3, 0, 100)
    out["ei_water_network_terms"] = [
        "; ".join([*terms_w, *(["water resources"] if np.isfinite(r) else [])])
        + ("" if rivers is not None else " (no rivers layer: river length term 0)")
        + ("" if np.isfinite(r) else " (no water_resources_1e6m3: water resources term 0)")
        for r in res
    ]

    built_share = sum(shares[t].fillna(0.0) for t in BUILT_TYPES).to_numpy(dtype=float)
    stress = STRESS_WEIGHTS["built"] * built_share
    stress_terms: list[list[str]] = [["built-up"] for _ in range(len(out))]
    for c in ("erosion_severe_km2", "erosion_moderate_km2", "other_stress_km2"):
        v = col(c).to_numpy(dtype=float)
        stress = stress + STRESS_WEIGHTS[c] * np.nan_to_num(v) / area_km2
        for i, ok in enumerate(np.isfinite(v)):
            stress_terms[i].append(c.removesuffix("_km2") if ok else f"{c.removesuffix('_km2')} not given (0)")
    out["ei_land_stress"] = np.clip(A_ERO * stress, 0, 100)
    out["ei_land_stress_terms"] = ["; ".join(t) for t in stress_terms]

    out["ei_pollution_load"] = col("pollution_load").astype(float).to_numpy()
    out["ei_env_restriction"] = col("env_restriction").astype(float).to_numpy()
    w = EI_WEIGHTS
    ei = (w["bio"] * out["ei_bio"] + w["veg"] * out["ei_veg"] + w["water"] * out["ei_water_network"]
          + w["stress"] * (100 - out["ei_land_stress"]) + w["pollution"] * (100 - out["ei_pollution_load"]) + out["ei_env_restriction"])
    out["ei"] = ei.astype(float)
    out["ei_grade"] = [ei_grade(v) for v in out["ei"]]
    missing = []
    for i in range(len(out)):
        m = [name for name, v in (("pollution_load 污染负荷", out.at[i, "ei_pollution_load"]), ("env_restriction 环境限制", out.at[i, "ei_env_restriction"]),
                                  ("NDVI 植被覆盖", out.at[i, "ei_veg"]), ("land cover 生境质量", out.at[i, "ei_habitat_quality"])) if not np.isfinite(v)]
        missing.append("; ".join(m) if m else None)
    out["ei_missing"] = missing
    for c in ("ei_habitat_quality", "ei_bio", "ei_veg", "ei_water_network", "ei_land_stress", "ei"):
        out[c] = out[c].astype(float).round(4)
    return out[[key, *EI_COLUMNS]]
