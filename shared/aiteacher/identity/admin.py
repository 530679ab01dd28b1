"""User administration: list and search accounts, change role and placement, deactivate and reactivate.

Who may do what is the access policy's answer (`aiteacher.access`). A role change or deactivation
raises the account's token version and revokes its logins, so the user's next request with an older
token is refused (401 `token_revoked` / `account_disabled`); every change forgets the cached profile.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy.orm import Session

from aiteacher import access
from aiteacher.audit import audit
from aiteacher.db.models import User
from aiteacher.errors import Forbidden, NotFound
from aiteacher.identity import profiles, repository
from aiteacher.identity.schemas import Role, UserRecord
from aiteacher.identity.service import PLACEMENT_FIELDS, apply_placement


def user_record(user: User) -> UserRecord:
    return UserRecord(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=cast("Role", user.role),
        faculty_id=user.faculty_id,
        department_id=user.department_id,
        semester_id=user.semester_id,
        is_active=bool(user.is_active),
        created_at=user.created_at.isoformat(),
    )


def list_users(
    session: Session,
    actor: access.CallerScope,
    *,
    query: str | None,
    role: str | None,
    faculty_id: int | None,
    active: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[User], int]:
    """A page of accounts (newest first) and the total that matches. Admins see everyone; academics the
    students of their faculty. `query` matches email or name, case-insensitively."""
    own_faculty, own_role = access.user_directory_scope(actor)
    if own_faculty is not None:
        if faculty_id not in (None, own_faculty):
            raise Forbidden("Academics list the students of their own faculty only")
        faculty_id = own_faculty
    if own_role is not None:
        if role not in (None, own_role):
            raise Forbidden("Academics list students only")
        role = own_role
    return repository.search_users(
        session, faculty_id=faculty_id, role=role, active=active, query=query, limit=limit, offset=offset
    )


def get_account(session: Session, actor: access.CallerScope, user_id: str) -> User:
    """An account the actor may see (another faculty's is indistinguishable from a missing one)."""
    user = session.get(User, user_id) if len(user_id) <= 36 else None
    if user is None:
        raise NotFound("No such user")
    if actor.is_admin or user.id == actor.user_id:
        return user
    own_faculty, own_role = access.user_directory_scope(actor)
    if user.role != own_role or user.faculty_id != own_faculty:
        raise NotFound("No such user")
    return user


def find_student_by_email(session: Session, actor: access.CallerScope, email: str) -> User:
    """Academics of a `managed` faculty place students who are not in it yet: an exact email finds one."""
    from aiteacher.identity.service import normalize_email

    access.user_directory_scope(actor)
    user = repository.user_by_email(session, normalize_email(email))
    if user is None or (not actor.is_admin and user.role != access.Role.STUDENT):
        raise NotFound("No such user")
    return user


def _for_update(session: Session, user_id: str) -> User:
    user = repository.user_for_update(session, user_id)
    if user is None:
        raise NotFound("No such user")
    return user


def _end_sessions(session: Session, user: User, reason: str) -> None:
    """Raise the token version (older access tokens refused even if Redis forgets) and revoke every login
    (refresh tokens refused; access tokens denied in the same Redis round trip as the rate limit)."""
    from aiteacher.cache import deny_family
    from aiteacher.config import get_settings
    from aiteacher.db import after_commit

    user.token_version = (user.token_version or 0) + 1
    now = datetime.now(UTC)
    families = repository.live_family_ids(session, user.id, now)
    repository.revoke_families(session, families, reason, now)
    ttl = get_settings().access_token_ttl_seconds

    def deny_all() -> None:
        for family_id in families:
            deny_family(family_id, ttl)

    after_commit(session, deny_all)
    profiles.forget_after_commit(session, user.id)


def change_role(session: Session, actor: access.CallerScope, user_id: str, role: access.Role) -> User:
    access.require_admin(actor)
    if user_id == actor.user_id:
        audit("user.role_change", "denied", actor=actor.user_id, target=user_id, reason="self")
        raise Forbidden("Admins do not change their own role (another admin can)")
    user = _for_update(session, user_id)
    before = user.role
    if before == role:
        return user
    user.role = role.value
    _end_sessions(session, user, "role_change")
    session.flush()
    audit("user.role_change", "ok", actor=actor.user_id, target=user.id, before=before, role=role.value)
    return user


def place(session: Session, actor: access.CallerScope, user_id: str, placement: dict[str, int | None]) -> User:
    user = _for_update(session, user_id)
    try:
        access.check_placement_by(
            actor,
            target_role=access.Role(user.role),
            current_faculty_id=user.faculty_id,
            new_faculty_id=placement.get("faculty_id"),
        )
    except Forbidden:
        audit(
            "user.placement",
            "denied",
            actor=actor.user_id,
            target=user.id,
            via=actor.role.value,
            faculty_id=placement.get("faculty_id"),
        )
        raise
    full = {key: placement.get(key) for key in PLACEMENT_FIELDS}
    if full != {key: getattr(user, key) for key in PLACEMENT_FIELDS}:
        apply_placement(session, user, full, actor=actor.user_id, via=actor.role.value)
    return user


def set_active(session: Session, actor: access.CallerScope, user_id: str, active: bool) -> User:
    access.require_admin(actor)
    action = "user.reactivate" if active else "user.deactivate"
    if user_id == actor.user_id:
        audit(action, "denied", actor=actor.user_id, target=user_id, reason="self")
        raise Forbidden("Admins do not deactivate themselves (another admin can)")
    user = _for_update(session, user_id)
    if bool(user.is_active) == active:
        return user
    user.is_active = active
    if not active:
        _end_sessions(session, user, "deactivated")
    else:
        profiles.forget_after_commit(session, user.id)
    session.flush()
    audit(action, "ok", actor=actor.user_id, target=user.id)
    return user
