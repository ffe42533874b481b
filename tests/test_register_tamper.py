"""Tampering with a register or an output folder is caught and named (issue: the register as a real
database). Each case edits the real files as an attacker would — sqlite3 on the GeoPackage, a
text editor on manifest.json, the project's own ``row_hash`` to recompute a chain — without the
signing key, and checks that ``verify`` names what was changed."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from redline.alerts import ALERT_COLUMNS, SCHEMA2_DEFAULTS
from redline.errors import RegisterError
from redline.register import Register, merge_alerts, row_hash
from redline.register.keys import create_key, key_id_of


def alert_row(zone: str, x: float, first: str) -> dict:
    return {
        "alert_id": None, "zone_id": zone, "zone_name": "龙门山", "admin_id": "510182", "area_m2": 10000.0,
        "centroid_lon": x, "centroid_lat": 30.7, "first_detected": first, "last_observed": "2023-09-01", "confidence": "nominal",
        "disturbance_type": "clearing", "magnitude": 0.4, "n_observations": 3, "status": "new", "scan_ids": "s1",
        "chip_before": None, "chip_after": None, "recheck": 0, **SCHEMA2_DEFAULTS, "geometry": shapely.box(x, 30.7, x + 0.001, 30.701),
    }


@pytest.fixture(params=["geopackage", "postgis"])
def reg(request, tmp_path) -> Register:
    """A register of three alerts written by a scan, with four signed decisions, in a GeoPackage
    and in PostGIS (the same cases on both back-ends)."""
    location = request.getfixturevalue("pg_cluster").new_database() if request.param == "postgis" else tmp_path / "register.gpkg"
    r = Register(location)
    found = gpd.GeoDataFrame([alert_row("Z1", 103.9, "2023-05-01"), alert_row("Z2", 104.0, "2023-07-01"), alert_row("Z3", 104.1, "2023-08-01")],
                             geometry="geometry", crs=4326)[[*ALERT_COLUMNS, "geometry"]]
    merged, _ = merge_alerts(r.alerts(), found, "s1")
    r.commit_scan(merged, scan={"scan_id": "s1", "name": "t", "n_items": 5, "new": 3, "updated": 0, "unchanged": 0})
    r.review("Z1-20230501-1", to_status="under_review", by="王工")
    r.review("Z1-20230501-1", to_status="field_check", by="王工", note="无人机详查")
    r.review("Z2-20230701-1", to_status="dismissed", by="李工", note="cloud shadow")
    r.review("Z3-20230801-1", activity_class="transport", cause="乡道施工", by="李工")
    assert r.verify().problems == []
    return r


def _scan_seq(reg: Register) -> int:
    chain = reg.chain()
    return int(chain.loc[chain["kind"] == "scan", "seq"].iloc[-1])


def _plain(v):
    """numpy scalars as Python values (psycopg adapts only these)."""
    return v.item() if hasattr(v, "item") else v


def _sql(reg: Register, *statements) -> None:
    """Statements run around redline, straight on the register's database (sqlite3 or psycopg)."""
    if reg.path is None:
        import psycopg

        with psycopg.connect(reg.location) as con:
            for st in statements:
                sql, params = (st if len(st) == 2 else (st[0], ())) if isinstance(st, tuple) else (st, ())
                con.execute(sql.replace("?", "%s"), tuple(_plain(v) for v in params))
        return
    with sqlite3.connect(reg.path) as con:
        for st in statements:
            con.execute(*st) if isinstance(st, tuple) else con.execute(st)


@pytest.mark.parametrize("column, value", [
    ("area_m2", 1.0), ("disturbance_type", "fire"), ("confidence", "low"), ("zone_id", "Z9"), ("admin_id", "000000"),
    ("first_detected", "2023-09-30"), ("magnitude", 0.01), ("scan_ids", "forged"),
])
def test_an_edited_alert_field_is_named(reg, column, value):
    _sql(reg, (f'UPDATE alerts SET "{column}" = ? WHERE alert_id = ?', (value, "Z1-20230501-1")))
    problems = reg.verify().problems
    assert any(p.startswith(f"alerts: alert Z1-20230501-1: {column} differ") for p in problems), problems


def test_an_edited_geometry_is_named(reg):
    from redline.register.store import encode_gpkg_geometry

    bigger = shapely.MultiPolygon([shapely.box(103.9, 30.7, 103.91, 30.71)])
    if reg.path is None:
        _sql(reg, ("UPDATE alerts SET geom = ST_GeomFromWKB(?, 4326) WHERE alert_id = ?", (shapely.to_wkb(bigger), "Z2-20230701-1")))
    else:
        _sql(reg, ("UPDATE alerts SET geom = ? WHERE alert_id = ?", (encode_gpkg_geometry(bigger), "Z2-20230701-1")))
    assert any("alert Z2-20230701-1: geometry differ" in p for p in reg.verify().problems)


def test_a_deleted_alert_is_named(reg):
    _sql(reg, ("DELETE FROM alerts WHERE alert_id = ?", ("Z2-20230701-1",)))
    assert f"alerts: alert Z2-20230701-1, sealed by scan entry seq {_scan_seq(reg)}, is missing (deleted)" in reg.verify().problems


def test_an_inserted_alert_is_named(reg):
    _sql(reg, "INSERT INTO alerts (geom, alert_id, zone_id, status, n_observations, recheck) "
              "SELECT geom, 'Z9-20230101-1', 'Z9', 'new', 1, 0 FROM alerts WHERE alert_id = 'Z1-20230501-1'")
    assert "alerts: alert Z9-20230101-1 has no seal (added outside a scan)" in reg.verify().problems


def test_an_edited_status_is_named(reg):
    _sql(reg, ("UPDATE alerts SET status = 'confirmed' WHERE alert_id = ?", ("Z1-20230501-1",)))
    assert any("alert Z1-20230501-1 has status 'confirmed' but its review history ends at 'field_check'" in p for p in reg.verify().problems)


def test_a_forged_entry_with_the_chain_recomputed_by_row_hash_is_caught_by_its_signature(reg):
    """The attacker edits a decision and recomputes every later hash with the project's own
    ``row_hash``: the chain is whole again, the signatures are not."""
    chain = reg.chain()
    target = int(chain.loc[chain["to_status"] == "dismissed", "seq"].iloc[0])
    rows = chain.to_dict("records")
    prev = None
    updates = []
    for r in rows:
        if prev is not None:
            r["prev_hash"] = prev
        if r["seq"] == target:
            r["to_status"], r["note"] = "under_review", "sent back"
        if r["seq"] >= target:
            r["row_hash"] = row_hash(r)
            updates.append(("UPDATE review_history SET to_status = ?, note = ?, prev_hash = ?, row_hash = ? WHERE seq = ?",
                            (r["to_status"], r["note"], r["prev_hash"], r["row_hash"], r["seq"])))
        prev = r["row_hash"]
    _sql(reg, *updates, "UPDATE alerts SET status = 'under_review' WHERE alert_id = 'Z2-20230701-1'")
    problems = reg.verify().problems
    assert f"review_history: entry seq {target} (alert Z2-20230701-1) has an invalid signature by key {reg.key.key_id} (forged, or edited and re-hashed)" in problems
    assert not any("does not chain" in p or "hash differs" in p for p in problems)  # the chain itself was made whole


def test_an_appended_unsigned_entry_is_caught(reg):
    head = reg.head()
    row = {"seq": head["seq"] + 1, "alert_id": "Z3-20230801-1", "time": "2023-12-01T00:00:00+00:00", "by": "王工", "from_status": "new",
           "to_status": "dismissed", "note": "", "prev_hash": head["row_hash"], "kind": "review"}
    row["row_hash"] = row_hash(row)
    _sql(reg, ("INSERT INTO review_history (seq, alert_id, time, \"by\", from_status, to_status, note, prev_hash, row_hash, kind) "
               "VALUES (?,?,?,?,?,?,?,?,?,?)", tuple(row[k] for k in ("seq", "alert_id", "time", "by", "from_status", "to_status", "note",
                                                                      "prev_hash", "row_hash", "kind"))),
         ("UPDATE alerts SET status = 'dismissed' WHERE alert_id = 'Z3-20230801-1'",))
    assert f"review_history: entry seq {row['seq']} (alert Z3-20230801-1) is not signed (entries after the first signed one must be)" in reg.verify().problems


def test_entries_signed_by_an_outsiders_key_are_caught_even_with_its_key_listed(reg, tmp_path):
    """An attacker signs with their own key and adds it to the signers table and as a key entry
    signed by itself: only keys that an admin's signed entry added count."""
    mallory = create_key(tmp_path / "mallory.pem")
    head = reg.head()
    key_row = {"seq": head["seq"] + 1, "alert_id": "", "time": "2023-12-01T00:00:00+00:00", "by": mallory.key_id, "from_status": "",
               "to_status": "", "note": "", "prev_hash": head["row_hash"], "kind": "key",
               "payload": json.dumps({"key_id": mallory.key_id, "public_key": mallory.public_hex, "role": "admin"}, sort_keys=True)}
    key_row["row_hash"] = row_hash(key_row)
    cols = ("seq", "alert_id", "time", "by", "from_status", "to_status", "note", "prev_hash", "row_hash", "kind", "payload", "key_id", "signature")
    values = tuple({**key_row, "key_id": mallory.key_id, "signature": mallory.sign(key_row["row_hash"])}[c] for c in cols)
    _sql(reg, (f"INSERT INTO review_history ({', '.join(repr(c).replace(chr(39), chr(34)) for c in cols)}) VALUES ({', '.join('?' * len(cols))})", values),
         ("INSERT INTO signers (key_id, public_key, role, seq) VALUES (?, ?, 'admin', ?)", (mallory.key_id, mallory.public_hex, key_row["seq"])))
    problems = reg.verify().problems
    assert f"review_history: entry seq {key_row['seq']} (key) is signed by key {mallory.key_id}, which is not among the register's signers" in problems
    assert any(p.startswith("signers: the table differs") for p in problems)


def test_a_replayed_entry_is_caught(reg):
    """An older signed decision copied to the end of the chain: its hash binds its seq and place."""
    chain = reg.chain()
    old = chain.iloc[-2].to_dict()
    head = reg.head()
    cols = [c for c in chain.columns]
    old.update(seq=head["seq"] + 1)
    _sql(reg, (f"INSERT INTO review_history ({', '.join(chr(34) + c + chr(34) for c in cols if c != 'fid')}) VALUES ({', '.join('?' * (len(cols) - ('fid' in cols)))})",
               tuple(None if isinstance(old[c], float) and old[c] != old[c] else old[c] for c in cols if c != "fid")))
    problems = reg.verify().problems
    assert any(f"entry seq {head['seq'] + 1}" in p and "does not chain" in p for p in problems)


def test_a_policy_edit_is_caught_and_the_meta_table_no_longer_decides(reg):
    _sql(reg, "INSERT INTO meta (key, value) VALUES ('review_steps', '')")
    assert reg.review_steps() == ("self_check", "specialist_check", "acceptance")  # the signed policy, not meta
    with pytest.raises(RegisterError, match="cannot be confirmed before the review step"):
        reg.review("Z1-20230501-1", to_status="confirmed", by="王工")
    policy = reg.set_policy(("acceptance",))
    _sql(reg, ("UPDATE review_history SET payload = ? WHERE seq = ?", (json.dumps({"review_steps": []}), policy["seq"])))
    assert any(f"entry seq {policy['seq']} (policy) was edited" in p for p in reg.verify().problems)


def test_a_signer_is_not_an_admin(reg, tmp_path):
    other = create_key(tmp_path / "county.pem")
    reg.trust(other.public_hex, role="signer")
    county = Register(reg.location, key=other)
    county.review("Z1-20230501-1", to_status="under_review", by="县级审核员")
    with pytest.raises(RegisterError, match="not an admin"):
        county.set_policy(("acceptance",))
    with pytest.raises(RegisterError, match="not an admin"):
        county.trust(create_key(tmp_path / "x.pem").public_hex)
    stranger = Register(reg.location, key=create_key(tmp_path / "stranger.pem"))
    with pytest.raises(RegisterError, match="may not sign this register.*redline keys trust"):
        stranger.review("Z1-20230501-1", to_status="dismissed", by="x")
    v = reg.verify()
    assert v.problems == [] and v.signers == {reg.key.key_id: "admin", other.key_id: "signer"}


def test_deleted_seals_or_scans_rows_are_caught(reg):
    _sql(reg, ("DELETE FROM alert_seals WHERE alert_id = ?", ("Z3-20230801-1",)))
    problems = reg.verify().problems
    assert any(f"the seals of scan entry seq {_scan_seq(reg)} (s1) differ from what it signed" in p for p in problems)
    assert "alerts: alert Z3-20230801-1 has no seal (added outside a scan)" in problems


def test_an_edited_scans_row_is_caught(reg):
    _sql(reg, "UPDATE scans SET n_items = 50 WHERE scan_id = 's1'")
    assert "scans: the row of scan s1 differs from its signed scan entry (edited)" in reg.verify().problems


def test_a_truncated_tail_with_the_status_reset_is_caught_against_a_published_head(reg):
    """Deleting the newest decision and setting the status back leaves a consistent register;
    only a head published before (manifest, report, `--head`) shows the loss."""
    published = reg.head()["row_hash"]
    _sql(reg, ("DELETE FROM review_history WHERE seq = ?", (reg.head()["seq"],)),
         "UPDATE alerts SET activity_class = NULL, cause = NULL WHERE alert_id = 'Z3-20230801-1'")
    assert reg.verify().problems == []  # the documented limit: a consistent tail cut, without a head to compare
    problems = reg.verify(heads=(published,)).problems
    assert problems == [f"review_history: the published head {published[:16]}… is not in the chain (entries after an earlier head were deleted, "
                        "or the register was replaced by an older copy)"]


# ------------------------------------------------------------------------------- output folders


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "redline.cli", *args], capture_output=True, text=True)


@pytest.fixture
def folder(small_scan, tmp_path) -> Path:
    """A copy of a real scan's output folder (its register inside), with one decision made."""
    out = tmp_path / "copy"
    shutil.copytree(small_scan.out_dir, out)
    r = Register(out / "register.gpkg")
    r.review(sorted(r.alerts()["alert_id"])[0], to_status="under_review", by="王工")
    return out


def test_verify_checks_the_copied_folders_own_register(folder, small_scan):
    res = _cli("verify", str(folder))
    assert res.returncode == 0, res.stderr
    assert f"register {folder / 'register.gpkg'}:" in res.stdout and "signatures valid" in res.stdout and "chain head: seq" in res.stdout
    assert "outputs: " in res.stdout and "manifest.json: signature valid" in res.stdout
    _sql(Register(folder / "register.gpkg"), "UPDATE alerts SET status = 'dismissed' WHERE status = 'under_review'")
    res = _cli("verify", str(folder))
    assert res.returncode == 1 and "has status 'dismissed' but its review history ends at 'under_review'" in res.stderr
    assert _cli("verify", str(small_scan.out_dir)).returncode == 0  # the original folder is untouched


def test_a_moved_folder_verifies_and_a_deleted_register_fails(folder, tmp_path):
    moved = tmp_path / "elsewhere" / "out"
    moved.parent.mkdir()
    folder.rename(moved)
    assert _cli("verify", str(moved)).returncode == 0
    (moved / "register.gpkg").unlink()
    res = _cli("verify", str(moved))
    assert res.returncode == 1 and f"register {moved / 'register.gpkg'}: missing (named by manifest.json)" in res.stderr


@pytest.mark.parametrize("change", ["cog", "geojson", "delete"])
def test_an_output_changed_with_the_manifest_updated_to_match_is_caught(folder, change):
    from redline.provenance import sha256_file

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if change == "cog":
        target = next(folder.glob("rasters/*.tif"))
        data = bytearray(target.read_bytes())
        data[-100] ^= 0xFF
        target.write_bytes(bytes(data))
    elif change == "geojson":
        target = folder / "alerts.geojson"
        target.write_text(target.read_text(encoding="utf-8").replace('"high"', '"low"'), encoding="utf-8")
    else:
        target = folder / "zone_stats.csv"
        target.unlink()
    rel = target.relative_to(folder).as_posix()
    if change == "delete":
        del manifest["outputs"][rel]
    else:
        manifest["outputs"][rel] = {"sha256": sha256_file(target), "size": target.stat().st_size}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    res = _cli("verify", str(folder))
    assert res.returncode == 1 and "manifest.json: its signature does not match its content (edited after the scan)" in res.stderr


def test_a_manifest_re_signed_by_another_key_is_caught(folder, tmp_path):
    from redline.provenance import read_manifest, write_manifest

    mallory = create_key(tmp_path / "mallory.pem")
    record = {k: v for k, v in read_manifest(folder).items() if k not in ("outputs", "signature")}
    write_manifest(folder, record, key=mallory, exclude=tuple(record.get("not_checksummed", [])))
    res = _cli("verify", str(folder))
    assert res.returncode == 1 and f"manifest.json: signed by key {mallory.key_id}, which is not among the register's signers" in res.stderr
    assert key_id_of(mallory.public_hex) == mallory.key_id


def test_a_tail_cut_after_a_rerender_is_caught_by_the_head_in_the_manifest(folder):
    """`redline map` records the register's head; deleting the decisions after it is caught."""
    reg = Register(folder / "register.gpkg")
    aid = sorted(reg.alerts()["alert_id"])[0]
    reg.review(aid, to_status="field_check", by="王工")
    assert _cli("map", str(folder), "--no-online-basemaps").returncode == 0
    head = reg.head()
    _sql(reg, ("DELETE FROM review_history WHERE seq = ?", (head["seq"],)), ("UPDATE alerts SET status = 'under_review' WHERE alert_id = ?", (aid,)))
    res = _cli("verify", str(folder))
    assert res.returncode == 1 and f"the published head {head['row_hash'][:16]}… is not in the chain" in res.stderr
    res = _cli("verify", str(folder), "--head", "f" * 64)
    assert "the published head ffffffffffffffff… is not in the chain" in res.stderr
