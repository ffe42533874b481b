"""The register's users (review service, step 1): accounts with roles and scopes, every change a
signed ``user`` entry, and the rules of who may record what, enforced by ``Register.review`` on
both back-ends (GeoPackage and PostGIS). Tampering with the ``users`` table is named by
``verify`` as an edited alert is (tests/test_register_tamper.py)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import geopandas as gpd
import pyogrio
import pytest
import shapely

from redline.alerts import ALERT_COLUMNS, SCHEMA2_DEFAULTS
from redline.errors import NotPermitted, RegisterError
from redline.register import Register, merge_alerts
from redline.register.keys import create_key
from redline.register.users import hash_password, password_matches
from redline.vocabulary import STEP_ROLES

PASSWORD = "correct horse battery"  # noqa: S105 - a test password


def alert_row(zone: str, admin: str, x: float, first: str) -> dict:
    return {
        "alert_id": None, "zone_id": zone, "zone_name": "龙门山", "admin_id": admin, "area_m2": 10000.0,
        "centroid_lon": x, "centroid_lat": 30.7, "first_detected": first, "last_observed": "2023-09-01", "confidence": "nominal",
        "disturbance_type": "clearing", "magnitude": 0.4, "n_observations": 3, "status": "new", "scan_ids": "s1",
        "chip_before": None, "chip_after": None, "recheck": 0, **SCHEMA2_DEFAULTS, "geometry": shapely.box(x, 30.7, x + 0.001, 30.701),
    }


def scanned(location) -> Register:
    """A register with three alerts from one scan: two in county 510182 (zones Z1, Z2), one in 510183 (Z3)."""
    r = Register(location)
    found = gpd.GeoDataFrame([alert_row("Z1", "510182", 103.9, "2023-05-01"), alert_row("Z2", "510182", 104.0, "2023-07-01"),
                              alert_row("Z3", "510183", 104.1, "2023-08-01")], geometry="geometry", crs=4326)[[*ALERT_COLUMNS, "geometry"]]
    merged, _ = merge_alerts(r.alerts(), found, "s1")
    r.commit_scan(merged, scan={"scan_id": "s1", "name": "t", "n_items": 5, "new": 3, "updated": 0, "unchanged": 0})
    return r


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Register:
    """A scanned register with five users (argon2 hashing takes 0.2 s a user, so it is built once
    and copied for each test): a reviewer of county 510182, a specialist, an acceptor, an admin,
    and a reviewer of zone Z3 only."""
    r = scanned(tmp_path_factory.mktemp("users") / "register.gpkg")
    r.add_user("wang", role="reviewer", password=PASSWORD, counties="510182")
    r.add_user("li", role="specialist", password=PASSWORD)
    r.add_user("zhao", role="acceptor", password=PASSWORD)
    r.add_user("boss", role="admin", password=PASSWORD)
    r.add_user("zhou", role="reviewer", password=PASSWORD, zones="Z3")
    return r


@pytest.fixture(params=["geopackage", "postgis"])
def reg(request, tmp_path, template) -> Register:
    """The template register copied (``Register.copy_to``, every hash and signature kept) into a
    new GeoPackage or a new PostGIS database."""
    location = request.getfixturevalue("pg_cluster").new_database() if request.param == "postgis" else tmp_path / "register.gpkg"
    r = Register(location)
    template.copy_to(r)
    return r


A1, A2, A3 = "Z1-20230501-1", "Z2-20230701-1", "Z3-20230801-1"


def test_users_are_rows_and_signed_entries_without_the_password_hash(reg):
    users = {u.name: u for u in reg.users()}
    assert set(users) == {"wang", "li", "zhao", "boss", "zhou"}
    assert users["wang"].counties == ("510182",) and users["wang"].zones == () and users["zhou"].zones == ("Z3",)
    entries = reg.chain()
    entries = entries[entries["kind"] == "user"]
    assert len(entries) == 5 and entries["key_id"].notna().all()
    payload = json.loads(entries["payload"].iloc[0])
    assert set(payload) == {"name", "role", "counties", "zones", "disabled", "password_sha256"}
    assert "argon2" not in entries["payload"].str.cat()
    assert reg.history()["kind"].isin(["review"]).all()  # the reviewers' history has decisions only
    assert reg.verify().problems == []


def test_the_policy_entry_names_the_role_of_each_step(reg):
    policy = json.loads(reg.chain().query("kind == 'policy'")["payload"].iloc[-1])
    assert policy["step_roles"] == STEP_ROLES and policy["separation_of_duties"] is True
    assert reg.policy().final_role == "acceptor"


def test_names_of_the_system_and_bad_values_are_refused(reg):
    for name in ("redline-scan", "Redline-bot", "", "two words", "a,b"):
        with pytest.raises(RegisterError, match="user name"):
            reg.add_user(name, role="reviewer", password=PASSWORD)
    with pytest.raises(RegisterError, match="exists"):
        reg.add_user("wang", role="reviewer", password=PASSWORD)
    with pytest.raises(RegisterError, match="is not a role"):
        reg.add_user("x1", role="boss", password=PASSWORD)
    with pytest.raises(RegisterError, match="too short"):
        reg.add_user("x2", role="reviewer", password="short")
    with pytest.raises(RegisterError, match="--counties"):
        reg.add_user("x3", role="reviewer", password=PASSWORD, counties="5101;DROP TABLE")


def test_three_steps_by_three_roles_then_the_acceptor_confirms(reg):
    reg.review(A1, by="wang", step="self_check", to_status="under_review")
    reg.review(A1, by="li", step="specialist_check")
    reg.review(A1, by="zhao", step="acceptance", to_status=None)
    row = reg.review(A1, by="zhao", to_status="confirmed")
    assert row["by"] == "zhao" and reg.alert(A1)["status"] == "confirmed"
    assert reg.verify().problems == []


@pytest.mark.parametrize("by, step, reason", [
    ("li", "self_check", "role"),  # a specialist does not self-check
    ("wang", "nobody", "user"),
])
def test_wrong_role_or_unknown_user_is_refused(reg, by, step, reason):
    who = by if reason != "user" else "nobody"
    with pytest.raises(NotPermitted) as e:
        reg.review(A1, by=who, step="self_check")
    assert e.value.reason == reason and "\n" not in str(e.value)


def test_only_the_final_role_confirms_and_reopens(reg):
    reg.review(A1, by="wang", step="self_check", to_status="under_review")
    reg.review(A1, by="li", step="specialist_check")
    reg.review(A1, by="zhao", step="acceptance")
    with pytest.raises(NotPermitted, match="only an acceptor"):
        reg.review(A1, by="wang", to_status="confirmed")
    reg.review(A1, by="boss", to_status="confirmed")  # an admin may
    with pytest.raises(NotPermitted, match="re-open"):
        reg.review(A1, by="wang", to_status="under_review")


def test_separation_of_duties_one_user_one_step(reg):
    reg.review(A1, by="boss", step="self_check", to_status="under_review")
    with pytest.raises(NotPermitted, match="separation of duties") as e:
        reg.review(A1, by="boss", step="specialist_check")
    assert e.value.reason == "separation"
    reg.review(A1, by="li", step="specialist_check")
    with pytest.raises(NotPermitted, match="separation of duties"):
        reg.review(A1, by="boss", step="acceptance")  # recorded self_check: may not accept
    reg.review(A1, by="zhao", step="acceptance")
    with pytest.raises(NotPermitted, match="may not also confirm"):
        reg.review(A1, by="boss", to_status="confirmed")
    # switched off in the signed policy, the admin may do both
    reg.set_policy(separation_of_duties=False)
    assert reg.policy().separation_of_duties is False
    reg.review(A2, by="boss", step="self_check")
    reg.review(A2, by="boss", step="specialist_check")
    assert reg.verify().problems == []


def test_scope_by_county_and_zone(reg):
    with pytest.raises(NotPermitted, match="outside the scope") as e:
        reg.review(A3, by="wang", step="self_check")  # county 510183
    assert e.value.reason == "scope"
    reg.review(A3, by="zhou", step="self_check")  # zone Z3
    with pytest.raises(NotPermitted, match="outside the scope"):
        reg.review(A1, by="zhou", to_status="under_review")


def test_a_disabled_user_can_neither_record_nor_log_in_and_stays_in_history(reg):
    reg.review(A1, by="wang", to_status="under_review")
    reg.disable_user("wang")
    with pytest.raises(NotPermitted, match="disabled"):
        reg.review(A1, by="wang", to_status="field_check")
    with pytest.raises(NotPermitted, match="wrong user name or password"):
        reg.authenticate("wang", PASSWORD)
    reg.update_user("wang", disabled=False)
    assert reg.authenticate("wang", PASSWORD).name == "wang"
    assert reg.verify().problems == []


def test_authenticate_says_the_same_for_a_wrong_name_and_a_wrong_password(reg):
    msgs = set()
    for name, pw in (("li", "wrong password"), ("nobody", PASSWORD), ("li", "")):
        with pytest.raises(NotPermitted) as e:
            reg.authenticate(name, pw)
        msgs.add(str(e.value))
    assert len(msgs) == 1
    assert reg.authenticate("li", PASSWORD).role == "specialist"


def test_allowed_actions_follow_the_same_rules(reg):
    wang, li = reg.user("wang"), reg.user("li")
    a = reg.allowed_actions(A1, wang)
    assert a.step == "self_check" and "confirmed" not in a.statuses and a.annotate
    assert reg.allowed_actions(A1, li).step is None  # the next step is the reviewer's
    reg.review(A1, by="wang", step="self_check")
    assert reg.allowed_actions(A1, li).step == "specialist_check"
    assert reg.allowed_actions(A1, wang).step is None
    assert not reg.allowed_actions(A3, wang).annotate  # outside wang's county


def test_a_register_without_users_keeps_the_single_user_mode(tmp_path):
    r = scanned(tmp_path / "register.gpkg")
    assert not r.has_users()
    r.review(A1, by="任何人", step="self_check")
    r.review(A1, by="任何人", step="specialist_check")  # no separation without users
    assert r.history()["by"].tolist() == ["任何人", "任何人"]


@pytest.mark.parametrize("column, value, named", [
    ("role", "admin", "role"), ("counties", "510183", "counties"), ("zones", "", "zones"), ("disabled", 1, "disabled"),
])
def test_an_edited_users_row_is_named(reg, column, value, named):
    _sql(reg, (f'UPDATE users SET "{column}" = ? WHERE name = ?', (value, "zhou")))
    problems = reg.verify().problems
    assert any(p.startswith(f"users: user zhou: {named} differ") for p in problems), problems


def test_a_swapped_password_hash_an_inserted_and_a_deleted_user_are_named(reg):
    forged = hash_password("attacker's password")
    _sql(reg, ("UPDATE users SET password_hash = ? WHERE name = ?", (forged, "li")),
         ("INSERT INTO users (name, role, counties, zones, password_hash, disabled, created, seq) VALUES (?, ?, '', '', ?, 0, '2024-01-01', 1)",
          ("mallory", "admin", forged)),
         ("DELETE FROM users WHERE name = ?", ("zhou",)))
    problems = reg.verify().problems
    assert "users: user li: password hash differ(s)" in " ".join(problems)
    assert "users: user mallory has no signed user entry (added outside `redline users`)" in problems
    assert any(p.startswith("users: user zhou, recorded by entry seq") and p.endswith("is missing (deleted)") for p in problems)


def test_a_user_entry_signed_by_a_non_admin_key_is_named(reg, tmp_path):
    other = create_key(tmp_path / "other.pem")
    reg.trust(other.public_hex, role="signer")
    with pytest.raises(RegisterError, match="not an admin"):
        Register(reg.location, key=other).add_user("sneaky", role="admin", password=PASSWORD)
    assert reg.user("sneaky") is None


def test_the_users_table_is_a_geopackage_attributes_table_and_copies_to_postgis(tmp_path, pg_cluster):
    r = scanned(tmp_path / "register.gpkg")
    r.add_user("li", role="specialist", password=PASSWORD, zones="Z1,Z2")
    with sqlite3.connect(r.path) as con:
        assert con.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'users'").fetchone() == ("attributes",)
    assert "users" in pyogrio.list_layers(r.path)[:, 0]
    copy = Register(pg_cluster.new_database())
    r.copy_to(copy)
    assert copy.users() == r.users() and copy.verify().problems == []
    assert copy.authenticate("li", PASSWORD).zones == ("Z1", "Z2")


def test_an_older_schema_3_register_gains_the_users_table(tmp_path):
    r = scanned(tmp_path / "register.gpkg")
    with sqlite3.connect(r.path) as con:
        con.execute("DROP TABLE users")
        con.execute("DELETE FROM gpkg_contents WHERE table_name = 'users'")
    assert r.users() == [] and r.verify().problems == []
    r.add_user("wang", role="reviewer", password=PASSWORD)
    assert [u.name for u in r.users()] == ["wang"] and r.verify().problems == []


def test_the_password_hash_is_argon2id():
    h = hash_password(PASSWORD)
    assert h.startswith("$argon2id$") and password_matches(h, PASSWORD) and not password_matches(h, PASSWORD + "x")


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def _sql(reg: Register, *statements) -> None:
    """Statements run around redline, straight on the register's database (sqlite3 or psycopg)."""
    if reg.path is None:
        import psycopg

        with psycopg.connect(reg.location) as con:
            for sql, params in statements:
                con.execute(sql.replace("?", "%s"), tuple(_plain(v) for v in params))
        return
    with sqlite3.connect(reg.path) as con:
        for sql, params in statements:
            con.execute(sql, params)


def test_users_cli_add_list_disable(tmp_path):
    r = scanned(tmp_path / "register.gpkg")

    def cli(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "redline.cli", *args], capture_output=True, text=True, input=stdin, timeout=120)

    res = cli("users", "add", "wang", "--role", "reviewer", "--counties", "510182", "--password-stdin", "--register", str(r.path), stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    res = cli("users", "add", "redline-x", "--role", "reviewer", "--password-stdin", "--register", str(r.path), stdin=PASSWORD + "\n")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "redline-" in res.stderr
    res = cli("users", "list", "--register", str(r.path))
    assert res.returncode == 0 and "wang" in res.stdout and "510182" in res.stdout and "argon2" not in res.stdout
    assert cli("users", "disable", "wang", "--register", str(r.path)).returncode == 0
    assert r.user("wang").disabled and r.verify().problems == []


# -- assignment -------------------------------------------------------------------------------
def test_a_specialist_assigns_alerts_in_one_transaction_recorded_and_signed(reg):
    rows = reg.assign([A1, A2], to="wang", by="li")
    assert [r["kind"] for r in rows] == ["assign", "assign"] and {r["by"] for r in rows} == {"li"}
    assert [json.loads(r["payload"]) for r in rows] == [{"to": "wang"}, {"to": "wang"}]
    assert reg.assignments() == {A1: "wang", A2: "wang"}
    h = reg.history(A1)  # the alert's history shows who assigned it to whom
    assert list(h["kind"]) == ["assign"] and h["note"].iloc[0] == "assigned to wang"
    assert reg.alert(A1)["status"] == "new"  # the status does not change
    reg.assign([A1], to="boss", by="boss")  # re-assigned by the admin
    reg.assign([A2], to=None, by="li")  # taken back
    assert reg.assignments() == {A1: "boss"}
    assert reg.verify().problems == []


def test_assignment_refusals_name_the_rule_and_record_nothing(reg):
    seq = int(reg.chain()["seq"].max())
    with pytest.raises(NotPermitted, match="assigned by a specialist or an admin, and wang is a reviewer") as e:
        reg.assign([A1], to="wang", by="wang")
    assert e.value.reason == "role"
    with pytest.raises(RegisterError, match=r"outside the scope of wang \(counties 510182"):
        reg.assign([A1, A3], to="wang", by="li")  # A3 lies in county 510183: neither is assigned
    with pytest.raises(RegisterError, match="'nobody' is not a user"):
        reg.assign([A1], to="nobody", by="li")
    with pytest.raises(RegisterError, match="no alert 'X-1'"):
        reg.assign(["X-1"], to="li", by="li")
    reg.disable_user("zhou")
    with pytest.raises(RegisterError, match="zhou is disabled"):
        reg.assign([A3], to="zhou", by="li")
    assert reg.assignments() == {}
    assert int(reg.chain()["seq"].max()) == seq + 1  # only the disable entry
    assert reg.allowed_actions(A1, reg.user("li")).assign and not reg.allowed_actions(A1, reg.user("wang")).assign


def test_the_policy_may_give_assignment_to_reviewers(reg):
    reg.set_policy(assign_roles=["reviewer", "admin"])
    assert reg.policy().assign_roles == ("reviewer", "admin")
    reg.assign([A1], to="wang", by="wang")
    with pytest.raises(NotPermitted, match="assigned by a reviewer or an admin"):
        reg.assign([A2], to="wang", by="li")
    with pytest.raises(RegisterError, match="'chief' is not a role"):
        reg.set_policy(assign_roles=["chief"])
    assert reg.verify().problems == []


def test_an_edited_assignment_is_named_by_verify(tmp_path, template):
    r = Register(tmp_path / "register.gpkg")
    template.copy_to(r)
    r.assign([A1], to="wang", by="li")
    with sqlite3.connect(r.path) as con:
        con.execute("""UPDATE review_history SET payload = '{"to": "zhao"}' WHERE kind = 'assign'""")
    assert any("was edited after it was written" in p for p in r.verify().problems)


def test_alerts_assign_cli_assigns_a_zones_alerts_as_an_authenticated_specialist(tmp_path, template):
    r = Register(tmp_path / "register.gpkg")
    template.copy_to(r)

    def cli(*args, stdin=PASSWORD + "\n"):
        return subprocess.run([sys.executable, "-m", "redline.cli", "alerts", *args, "--register", str(r.path)], capture_output=True,
                              text=True, input=stdin, timeout=120)

    res = cli("assign", "--zone", "Z1", "--to", "wang", "--by", "li", "--password-stdin")
    assert res.returncode == 0, res.stderr
    assert "1 alert(s) assigned to wang by li" in res.stdout
    res = cli("assign", A3, "--to", "wang", "--by", "li", "--password-stdin")  # outside wang's county
    assert res.returncode == 2 and "outside the scope of wang" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = cli("assign", A2, "--to", "wang", "--by", "li", "--password-stdin", stdin="wrong password\n")
    assert res.returncode == 2 and "wrong user name or password" in res.stderr
    res = cli("list", "--assigned", "wang", "--format", "csv")
    lines = res.stdout.strip().splitlines()
    assert res.returncode == 0 and len(lines) == 2 and lines[1].startswith(A1) and lines[1].endswith(",wang")
    assert r.assignments() == {A1: "wang"} and r.history(A1)["by"].tolist() == ["li"]


# -- teams ------------------------------------------------------------------------------------
TEAM = "巡护一队"


def test_a_team_holds_a_zones_alerts_for_each_member_within_their_own_scope(reg):
    entry = reg.add_team(TEAM, members="wang,zhou")  # wang: county 510182; zhou: zone Z3
    assert entry["kind"] == "team" and entry["key_id"] and json.loads(entry["payload"]) == {"name": TEAM, "members": ["wang", "zhou"], "disabled": False}
    assert reg.team(TEAM).members == ("wang", "zhou") and [t.name for t in reg.teams()] == [TEAM]
    rows = reg.assign([A1, A2, A3], to=TEAM, by="li")
    assert [json.loads(r["payload"]) for r in rows] == [{"to": TEAM, "team": True}] * 3 and rows[0]["note"] == f"assigned to team {TEAM}"
    assert reg.assignments() == {A1: TEAM, A2: TEAM, A3: TEAM}
    assert reg.assigned_to("wang") == {A1: TEAM, A2: TEAM} and reg.assigned_to("zhou") == {A3: TEAM}  # each sees the team's alerts of their scope
    assert reg.assigned_to("li") == {} and reg.assigned_to(TEAM) == {A1: TEAM, A2: TEAM, A3: TEAM}  # li is no member
    reg.update_team(TEAM, members="zhou")
    assert reg.assigned_to("wang") == {} and reg.team(TEAM).seq > entry["seq"]
    reg.update_team(TEAM, disabled=True)
    assert reg.assigned_to("zhou") == {} and reg.assignments()[A3] == TEAM  # a disabled team keeps its alerts, which are nobody's
    assert reg.verify().problems == []


def test_team_refusals_are_one_line_and_record_nothing(reg):
    reg.add_team("county-510182", members=["wang"])
    seq = int(reg.chain()["seq"].max())
    with pytest.raises(RegisterError, match=r"^alert Z3-20230801-1 \(county 510183, zone Z3\) is outside the scope of every enabled member of team "
                                            r"county-510182 \(wang\); assign it to a team with a member of that county or zone$"):
        reg.assign([A1, A3], to="county-510182", by="li")  # A1 alone would do: neither is assigned
    with pytest.raises(RegisterError, match="is a user's name"):
        reg.add_team("zhou", members="wang")
    with pytest.raises(RegisterError, match="is a team's name"):
        reg.add_user("county-510182", role="reviewer", password=PASSWORD)
    with pytest.raises(RegisterError, match="team county-510182 exists"):
        reg.add_team("county-510182", members="zhou")
    with pytest.raises(RegisterError, match="nobody is not a user of this register"):
        reg.add_team("t2", members="wang,nobody")
    with pytest.raises(RegisterError, match="names starting with 'redline-'"):
        reg.add_team("redline-team", members="wang")
    assert int(reg.chain()["seq"].max()) == seq and reg.assignments() == {}
    reg.update_team("county-510182", disabled=True)
    with pytest.raises(RegisterError, match="^alert Z1-20230501-1: team county-510182 is disabled; assign to an enabled team or user$"):
        reg.assign([A1], to="county-510182", by="li")
    reg.update_team("county-510182", disabled=False, members="wang,zhou")
    reg.disable_user("wang")  # a disabled member covers nothing
    with pytest.raises(RegisterError, match="outside the scope of every enabled member"):
        reg.assign([A1], to="county-510182", by="li")
    assert reg.assignments() == {}


def test_an_edited_inserted_or_deleted_teams_row_is_named(reg):
    reg.add_team("t1", members="wang")
    reg.add_team("t2", members="zhou")
    assert reg.verify().problems == []
    _sql(reg, ("UPDATE teams SET members = ? WHERE name = ?", ("wang,li", "t1")),
         ("INSERT INTO teams (name, members, disabled, created, seq) VALUES (?, ?, 0, '2024-01-01', 1)", ("t3", "li")),
         ("DELETE FROM teams WHERE name = ?", ("t2",)))
    problems = reg.verify().problems
    assert "teams: team t1: members differ(s) from its signed entry seq" in " ".join(problems)
    assert "teams: team t3 has no signed team entry (added outside `redline users team-add`)" in problems
    assert any(p.startswith("teams: team t2, recorded by entry seq") and p.endswith("is missing (deleted)") for p in problems)
    assert reg.assigned_to("li") == {}  # the forged membership is named; it was never signed


def test_teams_cli_add_list_set_and_the_assigned_list_of_a_member(tmp_path, template):
    r = Register(tmp_path / "register.gpkg")
    template.copy_to(r)

    def cli(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "redline.cli", *args, "--register", str(r.path)], capture_output=True, text=True,
                              input=stdin, timeout=120)

    res = cli("users", "team-add", TEAM, "--members", "wang,zhou")
    assert res.returncode == 0 and f"team {TEAM} added: wang, zhou" in res.stdout, res.stderr
    res = cli("users", "team-add", "wang", "--members", "zhou")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "is a user's name" in res.stderr
    res = cli("alerts", "assign", "--zone", "Z1", "--to", TEAM, "--by", "li", "--password-stdin", stdin=PASSWORD + "\n")
    assert res.returncode == 0 and f"1 alert(s) assigned to team {TEAM} by li" in res.stdout, res.stderr
    lines = cli("alerts", "list", "--assigned", "wang", "--format", "csv").stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith(A1) and lines[1].endswith(f",{TEAM}")  # the team's alert, in wang's scope
    assert len(cli("alerts", "list", "--assigned", "zhou", "--format", "csv").stdout.strip().splitlines()) == 1  # A1 is outside zhou's zone
    assert cli("users", "team-set", TEAM, "--disable").returncode == 0
    res = cli("users", "teams")
    assert res.returncode == 0 and TEAM in res.stdout and "wang,zhou" in res.stdout and "disabled" in res.stdout
    assert len(cli("alerts", "list", "--assigned", "wang", "--format", "csv").stdout.strip().splitlines()) == 1
    res = cli("users", "team-set", TEAM)
    assert res.returncode == 2 and "nothing to change" in res.stderr
    assert r.verify().problems == []
