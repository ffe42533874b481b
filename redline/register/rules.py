"""Who may record what: the review rules ``Register.review`` enforces and the review service
offers, in one place so that the command line, the web pages and the register agree.

The rules, checked in this order (the first that fails is the one line of the refusal):

1. **User** (multi-user registers only): ``by`` is an enabled user of the register.
2. **Scope**: the alert's ``admin_id`` is among the user's counties and its ``zone_id`` among the
   user's zones (an empty list is all).
3. **Role**: a review step is recorded by the role the policy's ``step_roles`` gives it (default
   :data:`redline.vocabulary.STEP_ROLES`: 自检 reviewer, 专检 specialist, 验收 acceptor) or by an
   admin. Confirming an alert, or re-opening a confirmed one, is the final decision: it belongs
   to the role of the policy's last step (the acceptor by default) or an admin.
4. **Separation of duties** (policy ``separation_of_duties``, on by default): one user records
   at most one of the review steps of an alert (so whoever records 验收 recorded neither 自检 nor
   专检 of it), and whoever confirms an alert recorded no step of it but the last.
5. **State**: the status change is one of :data:`redline.vocabulary.TRANSITIONS`; a step needs
   the steps before it passed; ``confirmed`` needs every step of the policy passed.

**Assignment** (:func:`assign_refusal`): the assigning user is enabled, has the alert in scope and
holds a role of the policy's ``assign_roles`` (default: specialist or admin: the provincial
specialist tasks county and field teams); the assignee is an enabled user whose scope covers the
alert, or an enabled team (:class:`redline.register.users.Team`) of which at least one enabled
member's scope covers it (whoever of the team goes, someone may act on the alert).

Rules 1–4 apply only when the register has users (the single-user mode records any name, as
before users existed). A refusal by rules 1–4 is :class:`redline.errors.NotPermitted` (its
``reason``: ``user``, ``scope``, ``role``, ``separation``); by rule 5 a plain
:class:`redline.errors.RegisterError`.

Pure functions of plain data: this module imports :mod:`redline.vocabulary`,
:mod:`redline.errors` and :mod:`redline.register.users` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redline.errors import NotPermitted, RegisterError
from redline.register.users import Team, User
from redline.vocabulary import REVIEW_STEPS, STEP_ROLES, TRANSITIONS, USER_ROLES

__all__ = ["Policy", "StepRecord", "Actions", "refusal", "allowed_actions", "assign_refusal", "FINAL_STATUS", "ASSIGN_ROLES"]

#: The status whose setting (and leaving) is the final decision on an alert.
FINAL_STATUS = "confirmed"
#: Who hands alerts to users by default: the provincial specialist, who tasks the county and field
#: teams (卫星普查 → 无人机详查 → 地面核查), and the admin.
ASSIGN_ROLES = ("specialist", "admin")


@dataclass(frozen=True)
class Policy:
    """The register's review policy, as its latest signed ``policy`` entry states it."""

    review_steps: tuple[str, ...] = tuple(REVIEW_STEPS)
    step_roles: Mapping[str, str] = field(default_factory=lambda: dict(STEP_ROLES))
    separation_of_duties: bool = True
    assign_roles: tuple[str, ...] = ASSIGN_ROLES

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any] | None) -> Policy:
        """The policy of a ``policy`` entry's payload; keys an older entry lacks take their defaults."""
        p = payload or {}
        return cls(review_steps=tuple(p.get("review_steps", REVIEW_STEPS)), step_roles={**STEP_ROLES, **(p.get("step_roles") or {})},
                   separation_of_duties=bool(p.get("separation_of_duties", True)), assign_roles=tuple(p.get("assign_roles", ASSIGN_ROLES)))

    def payload(self) -> dict[str, Any]:
        """The signed payload of this policy (``review_steps``, ``step_roles``, ``separation_of_duties``,
        and ``assign_roles`` when they are not the default, so earlier entries read the same)."""
        p: dict[str, Any] = {"review_steps": list(self.review_steps), "step_roles": dict(sorted(self.step_roles.items())),
                             "separation_of_duties": self.separation_of_duties}
        if tuple(self.assign_roles) != ASSIGN_ROLES:
            p["assign_roles"] = list(self.assign_roles)
        return p

    def checked(self) -> Policy:
        """This policy if its steps and roles are known ones, else one-line :class:`RegisterError`."""
        unknown = [s for s in self.review_steps if s not in REVIEW_STEPS]
        if unknown:
            raise RegisterError(f"review steps {', '.join(unknown)} are not steps; use {', '.join(REVIEW_STEPS)}")
        for step, role in self.step_roles.items():
            if step not in REVIEW_STEPS:
                raise RegisterError(f"step_roles: {step!r} is not a review step; use {', '.join(REVIEW_STEPS)}")
            if role not in USER_ROLES:
                raise RegisterError(f"step_roles: {step}={role!r} is not a role; use one of {', '.join(USER_ROLES)}")
        for role in self.assign_roles:
            if role not in USER_ROLES:
                raise RegisterError(f"assign_roles: {role!r} is not a role; use one of {', '.join(USER_ROLES)}")
        return self

    def role_of(self, step: str) -> str:
        """The role that records ``step``."""
        return self.step_roles.get(step, STEP_ROLES.get(step, "admin"))

    @property
    def final_role(self) -> str:
        """The role of the final decision: the role of the policy's last step (of 验收 when the
        policy has no step)."""
        return self.role_of(self.review_steps[-1] if self.review_steps else "acceptance")

    def describe(self) -> str:
        """One line: the steps with their roles and whether duties are separated."""
        steps = ", ".join(f"{s} by {self.role_of(s)}" for s in self.review_steps) or "no review step"
        return (f"{steps}; confirmed by {self.final_role}; separation of duties {'on' if self.separation_of_duties else 'off'}; "
                f"assigned by {' or '.join(self.assign_roles) or 'nobody'}")


@dataclass(frozen=True)
class StepRecord:
    """One recorded review step of an alert (history order)."""

    step: str
    result: str
    by: str


@dataclass(frozen=True)
class Actions:
    """What a user may record on an alert now: ``statuses`` (the allowed status changes),
    ``step`` (the next review step, or None), ``annotate`` (class, cause, legality and notes),
    ``assign`` (hand the alert to a user), and ``why_not`` (per refused status or step, the
    reason, for the page)."""

    statuses: tuple[str, ...] = ()
    step: str | None = None
    annotate: bool = False
    assign: bool = False
    why_not: Mapping[str, str] = field(default_factory=dict)


def _a(role: str) -> str:
    """``role`` with its indefinite article (an acceptor, a reviewer)."""
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


def _latest(records: Sequence[StepRecord]) -> dict[str, str]:
    return {r.step: r.result for r in records}


def _permission(user: User | None, users_mode: bool, by: str, policy: Policy, alert: Mapping[str, Any], records: Sequence[StepRecord], *,
                to_status: str | None, step: str | None) -> NotPermitted | None:
    """Rules 1–4 (module docstring) for ``user`` (None: ``by`` is no user)."""
    if not users_mode:
        return None
    aid = alert["alert_id"]
    if user is None:
        return NotPermitted(f"{by!r} is not a user of this register; decisions need an enabled user (`redline users list`)", "user")
    if user.disabled:
        return NotPermitted(f"user {user.name} is disabled; an admin re-enables them with `redline users enable {user.name}`", "user")
    if not user.in_scope(alert.get("admin_id"), alert.get("zone_id")):
        return NotPermitted(f"alert {aid} (county {alert.get('admin_id')}, zone {alert.get('zone_id')}) is outside the scope of user "
                            f"{user.name} ({user.scope_text()})", "scope")
    admin = user.role == "admin"
    if step is not None and not admin and policy.role_of(step) != user.role:
        return NotPermitted(f"alert {aid}: step '{step}' is recorded by {_a(policy.role_of(step))} (or an admin), and {user.name} is {_a(user.role)}", "role")
    current = alert.get("status")
    final = to_status == FINAL_STATUS or (current == FINAL_STATUS and to_status == "under_review")
    if final and not admin and user.role != policy.final_role:
        what = "confirm it" if to_status == FINAL_STATUS else "re-open a confirmed alert"
        return NotPermitted(f"alert {aid}: only {_a(policy.final_role)} (or an admin) may {what}, and {user.name} is {_a(user.role)}", "role")
    if policy.separation_of_duties:
        mine = {r.step for r in records if r.by == user.name}
        if step is not None and mine - {step}:
            return NotPermitted(f"alert {aid}: {user.name} recorded step '{sorted(mine - {step})[0]}' of this alert and may not also record "
                                f"'{step}' (separation of duties)", "separation")
        last = policy.review_steps[-1] if policy.review_steps else None
        if to_status == FINAL_STATUS and mine - {last, step}:
            return NotPermitted(f"alert {aid}: {user.name} recorded step '{sorted(mine - {last, step})[0]}' of this alert and may not also "
                                "confirm it (separation of duties)", "separation")
    return None


def _state(policy: Policy, alert: Mapping[str, Any], records: Sequence[StepRecord], *, to_status: str | None, step: str | None,
           result: str | None) -> RegisterError | None:
    """Rule 5 (module docstring): transitions, step order, confirmation."""
    aid, current = alert["alert_id"], alert["status"]
    if to_status is not None and to_status not in TRANSITIONS.get(current, ()):
        allowed = ", ".join(TRANSITIONS.get(current, ())) or "none"
        return RegisterError(f"alert {aid}: cannot go from '{current}' to '{to_status}'; allowed: {allowed}")
    required = policy.review_steps
    done = _latest(records)
    if step is not None:
        if step not in required:
            return RegisterError(f"--step {step!r} is not one of this register's review steps ({', '.join(required)}); see review.steps in the scan config")
        missing = [s for s in required[: required.index(step)] if done.get(s) != "pass"]
        if missing:
            return RegisterError(f"alert {aid}: step '{step}' needs {', '.join(missing)} passed first")
        done[step] = result or "pass"
    if to_status == FINAL_STATUS:
        missing = [s for s in required if done.get(s) != "pass"]
        if missing:
            return RegisterError(f"alert {aid}: cannot be confirmed before the review step(s) {', '.join(missing)} have passed; record them with --step")
    return None


def refusal(policy: Policy, alert: Mapping[str, Any], records: Sequence[StepRecord], *, by: str, user: User | None, users_mode: bool,
            to_status: str | None = None, step: str | None = None, result: str | None = None) -> RegisterError | None:
    """Why ``by`` may not record this decision on ``alert`` (``alert_id``, ``status``,
    ``admin_id``, ``zone_id``), given its step ``records``; None when it may. ``user`` is the
    register's user named ``by`` (None: no such user); ``users_mode``: the register has users."""
    return (_permission(user, users_mode, by, policy, alert, records, to_status=to_status, step=step)
            or _state(policy, alert, records, to_status=to_status, step=step, result=result))


def allowed_actions(policy: Policy, alert: Mapping[str, Any], records: Sequence[StepRecord], user: User | None, *, users_mode: bool) -> Actions:
    """What ``user`` may record on ``alert`` now (see :class:`Actions`): every status change of
    :data:`~redline.vocabulary.TRANSITIONS` and the next review step (the first of the policy
    not passed) that :func:`refusal` lets through."""
    by = user.name if user is not None else ""
    why: dict[str, str] = {}
    statuses = []
    for s in TRANSITIONS.get(alert["status"], ()):
        r = refusal(policy, alert, records, by=by, user=user, users_mode=users_mode, to_status=s)
        if r is None:
            statuses.append(s)
        else:
            why[s] = str(r)
    done = _latest(records)
    nxt = next((s for s in policy.review_steps if done.get(s) != "pass"), None)
    step = None
    if nxt is not None:
        r = refusal(policy, alert, records, by=by, user=user, users_mode=users_mode, step=nxt)
        if r is None:
            step = nxt
        else:
            why[nxt] = str(r)
    annotate = _permission(user, users_mode, by, policy, alert, records, to_status=None, step=None) is None
    assign = _assigner(policy, alert, by=by, user=user, users_mode=users_mode) is None
    return Actions(statuses=tuple(statuses), step=step, annotate=annotate, assign=assign, why_not=why)


def _assigner(policy: Policy, alert: Mapping[str, Any], *, by: str, user: User | None, users_mode: bool) -> NotPermitted | None:
    if not users_mode:
        return None
    if user is None or user.disabled:
        return _permission(user, users_mode, by, policy, alert, (), to_status=None, step=None)
    if not user.in_scope(alert.get("admin_id"), alert.get("zone_id")):
        return _permission(user, users_mode, by, policy, alert, (), to_status=None, step=None)
    if user.role not in policy.assign_roles:
        who = " or ".join(_a(r) for r in policy.assign_roles) or "nobody"
        return NotPermitted(f"alert {alert['alert_id']}: alerts are assigned by {who}, and {user.name} is {_a(user.role)}", "role")
    return None


def assign_refusal(policy: Policy, alert: Mapping[str, Any], *, by: str, user: User | None, users_mode: bool, to: str | None,
                   assignee: User | None, team: Team | None = None, members: Sequence[User] = ()) -> RegisterError | None:
    """Why ``by`` may not assign ``alert`` to ``to`` (None: take the assignment back); None when
    they may. ``assignee``: the register's user named ``to`` (None: no such user); ``team``: the
    register's team named ``to`` (None: no such team) and ``members`` its member users. In the
    single-user mode any names are recorded."""
    problem = _assigner(policy, alert, by=by, user=user, users_mode=users_mode)
    if problem is not None or to is None or not users_mode:
        return problem
    aid = alert["alert_id"]
    if team is not None:
        if team.disabled:
            return RegisterError(f"alert {aid}: team {team.name} is disabled; assign to an enabled team or user")
        if not team.reaches({m.name: m for m in members}, alert.get("admin_id"), alert.get("zone_id")):
            return RegisterError(f"alert {aid} (county {alert.get('admin_id')}, zone {alert.get('zone_id')}) is outside the scope of every "
                                 f"enabled member of team {team.name} ({','.join(team.members)}); assign it to a team with a member of that county or zone")
        return None
    if assignee is None:
        return RegisterError(f"alert {aid}: {to!r} is not a user or a team of this register; assign to one of `redline users list` or `redline users teams`")
    if assignee.disabled:
        return RegisterError(f"alert {aid}: user {assignee.name} is disabled; assign to an enabled user")
    if not assignee.in_scope(alert.get("admin_id"), alert.get("zone_id")):
        return RegisterError(f"alert {aid} (county {alert.get('admin_id')}, zone {alert.get('zone_id')}) is outside the scope of "
                             f"{assignee.name} ({assignee.scope_text()}); assign it to a user of that county or zone")
    return None
