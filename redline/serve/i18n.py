"""The review service's words in Chinese and English (``--lang zh|en``): page text here, the
supervision codes' labels from :mod:`redline.vocabulary`."""

from __future__ import annotations

from collections.abc import Callable

from redline.vocabulary import (
    ACTIVITY_CLASSES, CONFIDENCE_LABELS, DISTURBANCE_LABELS, FIELD_RESULTS, REVIEW_STEPS, STATUS_LABELS, USER_ROLES,
)

__all__ = ["LANGS", "TEXT", "DISMISS_REASONS", "translator", "label"]

LANGS = ("zh", "en")

#: key → (Chinese, English)
TEXT: dict[str, tuple[str, str]] = {
    "title": ("生态保护红线监管 · 预警核查", "Red-line supervision · alert review"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "login_failed": ("用户名或密码错误（或账号已停用）", "Wrong user name or password (or the account is disabled)"),
    "too_many": ("登录失败次数过多，请稍后再试", "Too many failed logins; try again later"),
    "retry_in": ("秒后可重试", "seconds until you may try again"),
    "session_ended": ("会话已结束，请重新登录", "Your session ended; log in again"),
    "queue": ("预警列表", "Alert queue"),
    "all": ("全部", "all"),
    "status": ("核查状态", "Status"),
    "zone": ("红线区", "Zone"),
    "county": ("行政区", "County"),
    "type": ("变化类型", "Type"),
    "confidence": ("置信度", "Confidence"),
    "since": ("首次发现自", "First detected from"),
    "until": ("至", "to"),
    "filter": ("筛选", "Filter"),
    "reset": ("清除", "Reset"),
    "sort": ("排序", "Sort"),
    "alert_id": ("预警编号", "Alert"),
    "first_detected": ("首次发现", "First detected"),
    "area_m2": ("面积(m²)", "Area (m²)"),
    "page": ("页", "page"),
    "of": ("共", "of"),
    "previous": ("上一条", "Previous"),
    "next": ("下一条", "Next"),
    "prev_page": ("上一页", "Previous page"),
    "next_page": ("下一页", "Next page"),
    "back_to_queue": ("返回列表", "Back to the queue"),
    "alerts_shown": ("条预警", "alert(s)"),
    "none_found": ("没有符合条件的预警", "No alert matches"),
    "fields": ("预警信息", "Alert fields"),
    "chips": ("前后影像", "Before / after"),
    "before": ("变化前", "before"),
    "after": ("变化后", "after"),
    "no_chip": ("无影像切片", "no chip"),
    "zone_figure": ("红线区指数变化", "Zone indices"),
    "map": ("位置", "Location"),
    "history": ("核查记录", "Review history"),
    "no_history": ("尚无核查记录", "No decision yet"),
    "time": ("时间", "Time"),
    "by": ("核查人", "By"),
    "change": ("状态变化", "Status change"),
    "step": ("核查环节", "Step"),
    "result": ("结论", "Result"),
    "note": ("备注", "Note"),
    "pass": ("通过", "pass"),
    "fail": ("不通过", "fail"),
    "actions": ("可执行的操作", "What you may record"),
    "no_actions": ("当前没有您可执行的操作", "Nothing you may record on this alert now"),
    "record_step": ("记录核查环节", "Record the review step"),
    "change_status": ("变更状态", "Change the status"),
    "new_status": ("新状态", "New status"),
    "dismiss_reason": ("排除原因（排除时必填）", "Reason (required to dismiss)"),
    "dismiss_text": ("排除说明（排除时必填）", "Explanation (required to dismiss)"),
    "choose": ("请选择", "choose"),
    "findings": ("核查结论", "Findings"),
    "activity_class": ("人类活动类型", "Activity class"),
    "cause": ("变化原因", "Cause"),
    "legality": ("合法性说明", "Legality"),
    "save": ("提交", "Save"),
    "saved": ("已记录", "Recorded"),
    "not_allowed": ("不允许的操作", "Not allowed"),
    "not_found": ("未找到", "Not found"),
    "conflict": ("无法记录", "Cannot be recorded"),
    "bad_request": ("输入有误", "Bad input"),
    "forbidden_csrf": ("请求无效（表单已过期或来源不明），请返回页面重试", "Invalid request (the form expired or came from elsewhere); go back and try again"),
    "why_not": ("不可执行的原因", "Why not"),
    "role": ("角色", "Role"),
    "scope": ("范围", "Scope"),
    "reasons_required": ("排除预警需选择原因并填写说明", "Dismissing needs a reason and an explanation"),
    "unknown_reason": ("请从列表中选择排除原因", "Choose the reason from the list"),
    "bad_date": ("日期格式应为 YYYY-MM-DD，已忽略", "dates are YYYY-MM-DD; ignored"),
    "counts": ("各状态数量", "Per status"),
    "zone_name": ("红线区名称", "Zone name"),
    "admin_id": ("行政区代码", "County code"),
    "recheck": ("需复核", "recheck"),
    "accesskeys": ("快捷键：Alt+P 上一条，Alt+N 下一条，Alt+B 返回列表", "Shortcuts: Alt+P previous, Alt+N next, Alt+B back to the queue"),
    "head": ("记录链头", "Chain head"),
    "assigned_to": ("承办人", "Assigned to"),
    "mine": ("仅分派给我的", "assigned to me"),
    "assign": ("分派", "Assign"),
    "assign_to": ("分派给", "Assign to"),
    "assign_selected": ("分派所选预警", "Assign the selected alerts"),
    "assign_filtered": ("分派全部筛选结果", "Assign every alert of this filter"),
    "unassign": ("收回分派", "take back"),
    "unassigned": ("未分派", "nobody"),
    "team": ("小组", "team"),
    "users_group": ("用户", "Users"),
    "teams_group": ("小组", "Teams"),
    "nothing_selected": ("未选择预警", "No alert selected"),
    "select": ("选择", "Select"),
    "download": ("下载筛选结果", "Download the filtered alerts"),
    "field_page": ("外业核查页", "field check page"),
}

#: The field pages (redline/serve/field.py): key → (Chinese, English)
TEXT.update({
    "field_checks": ("我的外业核查", "My field checks"),
    "field_check": ("外业核查", "Field check"),
    "no_field_checks": ("目前没有分配给您的外业核查", "No field check is assigned to you"),
    "distance_km": ("距离 km", "km away"),
    "by_distance": ("按与您所在位置的距离排序", "Nearest first, from your position"),
    "by_date": ("按首次发现日期排序（允许定位或输入坐标可按距离排序）", "Oldest first (allow location, or type coordinates, to sort by distance)"),
    "latitude": ("纬度", "Latitude"),
    "longitude": ("经度", "Longitude"),
    "accuracy_m": ("精度 (m)", "Accuracy (m)"),
    "sort_by_distance": ("按距离排序", "Sort by distance"),
    "maps_app": ("地图应用", "Maps app"),
    "osm": ("OpenStreetMap", "OpenStreetMap"),
    "record_finding": ("记录核查结果", "Record the finding"),
    "field_result": ("核查结果", "Finding"),
    "finding_text": ("现场情况说明", "What you found"),
    "photos": ("现场照片", "Photos"),
    "photos_hint": ("JPEG 或 PNG，保留拍摄时间和位置；每张最大", "JPEG or PNG, time and place kept; each at most"),
    "photos_max": ("张以内", "photos at most"),
    "position": ("您的位置（WGS 84）", "Your position (WGS 84)"),
    "position_hint": ("允许浏览器定位后自动填写，也可手动输入", "Filled in when the browser may locate you; or type it"),
    "locating": ("正在定位…", "Locating…"),
    "located": ("已定位", "Located"),
    "no_location": ("无法定位，可手动输入坐标", "No position; type the coordinates"),
    "field_done": ("外业核查完成，转回审核（审核中）", "Field check done: back to review (under review)"),
    "findings_recorded": ("外业核查记录", "Field findings"),
    "no_findings": ("尚无外业核查记录", "No field finding yet"),
    "photo": ("照片", "Photo"),
    "taken": ("拍摄", "taken"),
    "at": ("位置", "at"),
    "bad_position": ("坐标无效（纬度 -90…90，经度 -180…180，十进制度）", "Invalid coordinates (latitude -90…90, longitude -180…180, decimal degrees)"),
    "result_required": ("请选择核查结果", "Choose the finding"),
    "photo_refused": ("照片不被接受", "Photo refused"),
    "too_large": ("文件过大", "Too large"),
    "length_required": ("请求缺少 Content-Length，无法上传", "The request has no Content-Length; the upload is refused"),
    "may_not_record": ("您不能在此预警上记录外业核查", "You may not record a field finding on this alert"),
    "alert_page": ("预警详情", "Alert page"),
})

#: Default reasons for dismissing an alert (``--dismiss-reasons FILE`` replaces them): the usual
#: false alarms of optical change detection and the alerts that need no action.
DISMISS_REASONS: dict[str, tuple[str, ...]] = {
    "zh": ("云或云影误检", "农作物季节性变化", "水位季节性变化", "物候变化", "影像质量问题", "基准期前已存在", "已批准的合法项目", "其他"),
    "en": ("cloud or cloud shadow", "seasonal crop change", "seasonal water level", "phenology", "image quality", "existed before the baseline",
           "approved lawful project", "other"),
}

_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "status": STATUS_LABELS,
    "step": dict(REVIEW_STEPS),
    "type": DISTURBANCE_LABELS,
    "confidence": CONFIDENCE_LABELS,
    "role": USER_ROLES,
    "class": ACTIVITY_CLASSES,
    "result": {"pass": TEXT["pass"], "fail": TEXT["fail"]},
    "field_result": FIELD_RESULTS,
}


def label(kind: str, code: object, lang: str) -> str:
    """The label of a supervision code (``kind``: status, step, type, confidence, role, class,
    result, field_result) in ``lang``; the code itself when it has none."""
    pair = _LABELS.get(kind, {}).get(str(code))
    return pair[LANGS.index(lang)] if pair else ("" if code is None else str(code))


def translator(lang: str) -> Callable[[str], str]:
    """``t(key)``: the page text ``key`` in ``lang`` (the key itself when unknown)."""
    i = LANGS.index(lang)
    return lambda key: TEXT[key][i] if key in TEXT else key
