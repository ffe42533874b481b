"""The supervision vocabulary: the codes an alert, a review and the ledger use, with their
Chinese and English labels. Plain data, no imports: the command line takes its choices and
help texts from here without loading the science (redline.register, redline.alerts.activity and
redline.alerts use the same names).
"""

from __future__ import annotations

__all__ = [
    "ACTIVITY_CLASSES", "ACTIVITY_CODES", "CHANGE_TYPES", "CONFIDENCE_LABELS", "CONFIDENCE_LEVELS", "DISTURBANCE_LABELS", "DISTURBANCE_TYPES",
    "FIELD_RESULTS",
    "RECTIFICATION_STATUSES", "REVIEW_STEPS", "STATUS_LABELS", "STATUSES", "STEP_RESULTS", "STEP_ROLES", "TRANSITIONS", "USER_ROLES",
]

#: Disturbance types of an alert (the type rule: :mod:`redline.alerts`).
DISTURBANCE_TYPES = ("clearing", "construction", "mining", "fire", "water_loss", "other")

#: Confidence of an alert (:func:`redline.alerts.confidence_level`).
CONFIDENCE_LEVELS = ("low", "nominal", "high")

#: Review statuses of an alert.
STATUSES = ("new", "under_review", "field_check", "confirmed", "dismissed", "rectifying", "rectified", "recovered")

#: Allowed review transitions (卫星普查 → 无人机详查 → 地面核查: satellite → UAV → ground; then
#: 整改 → 销号: a confirmed violation is rectified, and a later scan checks that vegetation is back).
TRANSITIONS = {
    "new": ("under_review", "field_check", "dismissed"),
    "under_review": ("field_check", "confirmed", "dismissed"),
    "field_check": ("confirmed", "dismissed", "under_review"),
    "confirmed": ("under_review", "rectifying"),
    "dismissed": ("under_review",),
    "rectifying": ("rectified", "under_review"),
    "rectified": ("rectifying", "recovered"),
    "recovered": ("rectifying",),
}

#: Rectification statuses (shown in the ledger's rectification column).
RECTIFICATION_STATUSES = ("rectifying", "rectified", "recovered")

#: The three review levels: code → (Chinese, English).
REVIEW_STEPS = {"self_check": ("自检", "self-check"), "specialist_check": ("专检", "specialist check"), "acceptance": ("验收", "acceptance")}

STEP_RESULTS = ("pass", "fail")

#: The nine national human-activity classes: code → (Chinese label, English label).
ACTIVITY_CLASSES: dict[str, tuple[str, str]] = {
    "settlement": ("居民点", "settlement"),
    "agriculture": ("农业用地", "agricultural land"),
    "quarry": ("采石场", "quarry"),
    "industrial_mining": ("工矿用地", "industrial and mining land"),
    "energy": ("能源设施", "energy facility"),
    "transport": ("交通设施", "transport facility"),
    "tourism": ("旅游设施", "tourism facility"),
    "aquaculture": ("养殖场", "aquaculture / livestock farm"),
    "other_artificial": ("其他人工设施", "other artificial facility"),
}

ACTIVITY_CODES = tuple(ACTIVITY_CLASSES)

#: Change type code → (Chinese, English).
CHANGE_TYPES: dict[str, tuple[str, str]] = {"new": ("新增", "new"), "expansion": ("规模扩大", "expansion")}

#: Review statuses: code → (Chinese, English) (the ledger's and the review service's labels).
STATUS_LABELS: dict[str, tuple[str, str]] = {
    "new": ("新发现", "new"), "under_review": ("审核中", "under review"), "field_check": ("实地核查", "field check"),
    "confirmed": ("已确认", "confirmed"), "dismissed": ("已排除", "dismissed"), "rectifying": ("整改中", "rectifying"),
    "rectified": ("已整改销号", "rectified"), "recovered": ("已恢复", "recovered"),
}

#: Disturbance types: code → (Chinese, English).
DISTURBANCE_LABELS: dict[str, tuple[str, str]] = {
    "clearing": ("植被清除", "clearing"), "construction": ("建设占用", "construction"), "mining": ("采矿采石", "mining"),
    "fire": ("火烧", "fire"), "water_loss": ("水域减少", "water loss"), "other": ("其他", "other"),
}

#: Confidence levels: code → (Chinese, English).
CONFIDENCE_LABELS: dict[str, tuple[str, str]] = {"low": ("低", "low"), "nominal": ("中", "nominal"), "high": ("高", "high")}

#: Roles of the register's users (``redline users``): code → (Chinese, English). ``admin`` may
#: record any review step; the others the steps the policy's ``step_roles`` give them.
USER_ROLES: dict[str, tuple[str, str]] = {
    "reviewer": ("县级审核员", "county reviewer"),
    "specialist": ("省级专家", "provincial specialist"),
    "acceptor": ("验收人员", "acceptance officer"),
    "admin": ("管理员", "administrator"),
}

#: Which role records which review step, unless the register's signed policy says otherwise
#: (its ``step_roles``): 自检 by the county reviewer, 专检 by the provincial specialist, 验收 by
#: the acceptance officer.
STEP_ROLES: dict[str, str] = {"self_check": "reviewer", "specialist_check": "specialist", "acceptance": "acceptor"}

#: What a field check (外业核查) found on the ground: code → (Chinese, English). A finding records
#: one of them (``redline.register.photos.FieldFinding``); it changes no status by itself.
FIELD_RESULTS: dict[str, tuple[str, str]] = {
    "activity_found": ("发现人类活动", "human activity found"),
    "nothing_found": ("未发现人类活动", "no human activity found"),
    "rectified": ("已整改恢复", "already rectified"),
}

#: The alert register's columns (a scan's alerts, alerts.geojson, the register's ``alerts`` table;
#: here, beside the other vocabularies, so that the register and its command line need not import
#: the detector).
ALERT_COLUMNS = [
    "alert_id",
    "zone_id",
    "zone_name",
    "admin_id",
    "area_m2",
    "centroid_lon",
    "centroid_lat",
    "first_detected",
    "last_observed",
    "confidence",
    "disturbance_type",
    "magnitude",
    "n_observations",
    "status",
    "scan_ids",
    "chip_before",
    "chip_after",
    "recheck",
    # schema 2 (issue 11): national vocabulary, reviewer's findings, chip dates
    "activity_candidates",
    "activity_class",
    "change_type",
    "cause",
    "legality",
    "before_dates",
    "after_dates",
]

#: Defaults of the schema-2 columns for alerts written before they existed (see
#: :meth:`redline.register.Register.alerts`).
SCHEMA2_DEFAULTS = {c: None for c in ALERT_COLUMNS[ALERT_COLUMNS.index("activity_candidates"):]}
