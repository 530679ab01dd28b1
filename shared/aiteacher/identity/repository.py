"""The identity domain's SQL: accounts by email, the user directory, row locks and refresh-token families.

Statements only; who may run them is the service's and the access policy's business. Loading a row by
primary key (`session.get`) and changing attributes of a loaded row stay in the services.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from aiteacher.db import rows_affected
from aiteacher.db.models import RefreshFamily, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

    ProfileRow = Row[str, str, str, str, int | None, int | None, int | None, str | None, int]


def email_taken(session: Session, email: str) -> bool:
    return session.scalar(select(User.id).where(User.email == email)) is not None


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email))


def profile_row(session: Session, user_id: str) -> ProfileRow | None:
    """The columns of an active account's cached profile (a row, or None)."""
    return session.execute(
        select(
            User.id,
            User.email,
            User.full_name,
            User.role,
            User.faculty_id,
            User.department_id,
            User.semester_id,
            User.push_token,
            User.token_version,
        ).where(User.id == user_id, User.is_active.is_(True))
    ).first()


def user_for_update(session: Session, user_id: str) -> User | None:
    """The account, locked until the transaction ends (PostgreSQL `SELECT ... FOR UPDATE`)."""
    return session.get(User, user_id, with_for_update=True) if len(user_id) <= 36 else None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_users(
    session: Session,
    *,
    faculty_id: int | None,
    role: str | None,
    active: bool | None,
    query: str | None,
    limit: int,
    offset: int,
) -> tuple[list[User], int]:
    """A page of accounts (newest first) and the total that matches; `query` matches email or name,
    case-insensitively."""
    statement = select(User)
    if faculty_id is not None:
        statement = statement.where(User.faculty_id == faculty_id)
    if role is not None:
        statement = statement.where(User.role == role)
    if active is not None:
        statement = statement.where(User.is_active.is_(active))
    if query and query.strip():
        pattern = f"%{_escape_like(query.strip().lower())}%"
        statement = statement.where(
            or_(
                func.lower(User.email).like(pattern, escape="\\"), func.lower(User.full_name).like(pattern, escape="\\")
            )
        )
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    users = session.scalars(statement.order_by(User.created_at.desc(), User.id).limit(limit).offset(offset)).all()
    return list(users), int(total)


# --- refresh-token families -------------------------------------------------------------------------


def rotate_family(session: Session, family_id: str, presented_jti: str, new_jti: str, now: datetime) -> bool:
    """Compare-and-swap on the current jti: of two concurrent uses of one token, exactly one wins."""
    rotated = rows_affected(
        session,
        update(RefreshFamily)
        .where(
            RefreshFamily.id == family_id,
            RefreshFamily.current_jti == presented_jti,
            RefreshFamily.revoked_at.is_(None),
        )
        .values(current_jti=new_jti, last_used_at=now)
        .execution_options(synchronize_session=False),
    )
    return rotated == 1


def live_family_ids(session: Session, user_id: str, now: datetime) -> list[str]:
    """The user's logins that are neither revoked nor expired."""
    return list(
        session.scalars(
            select(RefreshFamily.id).where(
                RefreshFamily.user_id == user_id, RefreshFamily.revoked_at.is_(None), RefreshFamily.expires_at > now
            )
        )
    )


def revoke_families(session: Session, family_ids: list[str], reason: str, now: datetime) -> None:
    """Mark the logins revoked (those already revoked keep their first reason)."""
    if not family_ids:
        return
    session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.id.in_(family_ids), RefreshFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
