"""Registration, login, token rotation, logout and profiles. Plain functions over a session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aiteacher.audit import audit
from aiteacher.cache import deny_family, deny_token
from aiteacher.config import get_settings
from aiteacher.db.models import RefreshFamily, User, new_id
from aiteacher.enums import Role
from aiteacher.errors import Conflict, Forbidden, InvalidCredentials, InvalidToken, NotFound
from aiteacher.identity import profiles, repository
from aiteacher.security import passwords, tokens
from aiteacher.security.tokens import Claims


def normalize_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class IssuedPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


# --- registration ---------------------------------------------------------------------------------


def register(session: Session, *, email: str, password: str, full_name: str, role: str, caller: Claims | None) -> User:
    """Anyone may create a student; academics and admins are created by an admin only."""
    actor = caller.sub if caller else None
    if role != Role.STUDENT and (caller is None or caller.role != Role.ADMIN):
        audit("user.register", "denied", actor=actor, target=normalize_email(email), role=role)
        raise Forbidden("Only an admin can create academic or admin accounts")
    email = normalize_email(email)
    passwords.check_new_password(password)
    if repository.email_taken(session, email):
        audit("user.register", "duplicate", actor=actor, target=email)
        raise Conflict("An account with this email already exists", code="email_taken")
    user = User(
        id=new_id(),
        email=email,
        password_hash=passwords.hash_password(password),
        full_name=full_name.strip(),
        role=role,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict("An account with this email already exists", code="email_taken") from exc
    audit("user.register", "ok", actor=actor or user.id, target=user.id, role=role)
    if role != Role.STUDENT:
        audit("user.role_change", "ok", actor=actor, target=user.id, role=role)
    return user


def ensure_admin(session: Session, email: str, password: str) -> str:
    """Create the admin if missing, or promote the account to admin (password reset). Returns the user id."""
    email = normalize_email(email)
    if not passwords.MIN_LENGTH <= len(password) <= passwords.MAX_LENGTH:
        raise ValueError("The admin password must be 8-128 characters")
    if not password.strip() or passwords.is_common(password):
        raise ValueError("The admin password is blank or too common (it appears in lists of breached passwords)")
    user = repository.user_by_email(session, email)
    if user is None:
        user = User(
            id=new_id(),
            email=email,
            password_hash=passwords.hash_password(password),
            full_name="Administrator",
            role=Role.ADMIN,
        )
        session.add(user)
        session.flush()
        audit("user.register", "ok", actor="bootstrap", target=user.id, role=Role.ADMIN)
    elif user.role != Role.ADMIN or not passwords.verify_password(password, user.password_hash)[0]:
        if user.role != Role.ADMIN:  # tokens of the old role are refused from the next request on
            user.token_version = (user.token_version or 0) + 1
        user.role = Role.ADMIN
        user.password_hash = passwords.hash_password(password)
        profiles.forget_after_commit(session, user.id)
        audit("user.role_change", "ok", actor="bootstrap", target=user.id, role=Role.ADMIN)
    return user.id


# --- login ----------------------------------------------------------------------------------------


def login(session: Session, *, email: str, password: str, client_ip: str) -> IssuedPair:
    from aiteacher.security.login_throttle import LoginAttempt

    email = normalize_email(email)
    attempt = LoginAttempt.of(email, client_ip)
    attempt.check()
    user = repository.user_by_email(session, email)
    if user is None:
        passwords.dummy_verify(password)
        valid, new_hash = False, None
    else:
        valid, new_hash = passwords.verify_password(password, user.password_hash)
    if not valid or user is None or not user.is_active:
        attempt.failed()
        audit("auth.login", "failed", target=email, reason="unknown_email" if user is None else "bad_password")
        raise InvalidCredentials("The email or password is incorrect")
    if new_hash:
        user.password_hash = new_hash
    attempt.succeeded()
    pair = _start_family(session, user)
    audit("auth.login", "ok", actor=user.id, target=user.id)
    return pair


def _start_family(session: Session, user: User) -> IssuedPair:
    settings = get_settings()
    now = datetime.now(UTC)
    family = RefreshFamily(
        id=new_id(),
        user_id=user.id,
        current_jti=tokens.new_jti(),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
    )
    session.add(family)
    session.flush()
    return _issue_pair(user, family)


def _issue_pair(user: User, family: RefreshFamily) -> IssuedPair:
    settings = get_settings()
    expires_at = int(family.expires_at.timestamp())
    access, _ = tokens.issue(
        "access",
        sub=user.id,
        role=user.role,
        family=family.id,
        ttl_seconds=settings.access_token_ttl_seconds,
        version=user.token_version or 0,
    )
    refresh, claims = tokens.issue(
        "refresh",
        sub=user.id,
        role=user.role,
        family=family.id,
        ttl_seconds=settings.refresh_token_ttl_seconds,
        jti=family.current_jti,
        expires_at=expires_at,
        version=user.token_version or 0,
    )
    return IssuedPair(access, refresh, settings.access_token_ttl_seconds, max(0, claims.exp - claims.iat))


# --- refresh and logout ---------------------------------------------------------------------------


def refresh(session: Session, refresh_token: str) -> IssuedPair | None:
    """Rotate a refresh token. None means the token was already used: its whole family is now revoked,
    which the caller must commit before answering 401."""
    claims = tokens.decode(refresh_token, "refresh")
    family = session.get(RefreshFamily, claims.fam) if claims.fam else None
    if family is None or family.user_id != claims.sub:
        audit("auth.refresh", "failed", actor=claims.sub, reason="unknown_family")
        raise InvalidToken("The refresh token is invalid")
    if family.revoked_at is not None:
        audit("auth.refresh", "failed", actor=claims.sub, target=family.id, reason="revoked")
        raise InvalidToken("The refresh token has been revoked")
    user = session.get(User, claims.sub)
    if user is None or not user.is_active:
        raise InvalidToken("The refresh token is invalid")
    if claims.ver < (user.token_version or 0):
        audit("auth.refresh", "failed", actor=claims.sub, target=family.id, reason="token_version")
        raise InvalidToken("The account's role or status changed since this login; sign in again", code="token_revoked")
    new_jti = tokens.new_jti()
    now = datetime.now(UTC)
    if not repository.rotate_family(session, family.id, claims.jti, new_jti, now):
        _revoke_family(session, family.id, "reuse")
        audit("auth.refresh_reuse", "revoked", actor=claims.sub, target=family.id)
        return None
    family.current_jti = new_jti
    audit("auth.refresh", "ok", actor=user.id, target=family.id)
    return _issue_pair(user, family)


def _revoke_family(session: Session, family_id: str, reason: str) -> None:
    repository.revoke_families(session, [family_id], reason, datetime.now(UTC))
    # Access tokens of this login stay refused until the longest of them would have expired.
    deny_family(family_id, get_settings().access_token_ttl_seconds)


def logout(session: Session, caller: Claims, refresh_token: str | None) -> None:
    from aiteacher.security.revocation import persist_token_revocation

    persist_token_revocation(session, caller.iss, caller.jti, caller.exp)  # survives Redis losing its keys
    deny_token(caller.iss, caller.jti, caller.exp)
    families = {caller.fam} if caller.fam else set()
    if refresh_token:
        try:
            refresh_claims = tokens.decode(refresh_token, "refresh")
        except InvalidToken:
            refresh_claims = None
        if refresh_claims and refresh_claims.sub == caller.sub and refresh_claims.fam:
            families.add(refresh_claims.fam)
    for family_id in families:
        _revoke_family(session, family_id, "logout")
    audit("auth.logout", "ok", actor=caller.sub, target=caller.sub, families=len(families))


# --- profile --------------------------------------------------------------------------------------


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound("The account no longer exists")
    return user


PLACEMENT_FIELDS = ("faculty_id", "department_id", "semester_id")


def update_profile(session: Session, caller: Claims, changes: dict[str, object]) -> User:
    """PUT /me. A placement change goes through the access policy: academics and admins never move
    themselves; a student entering a faculty follows its enrolment policy (`enrolment_key`)."""
    from aiteacher import access
    from aiteacher.db.models import Faculty

    user = get_user(session, caller.sub)
    enrolment_key = changes.pop("enrolment_key", None)
    if "push_token" in changes:
        push_token = changes.pop("push_token")
        user.push_token = None if push_token is None else str(push_token)
    if "full_name" in changes:
        if changes["full_name"] is None:
            changes.pop("full_name")
        else:
            user.full_name = str(changes["full_name"]).strip()
    placement = new_placement(user, changes)
    if placement != {key: getattr(user, key) for key in PLACEMENT_FIELDS}:
        faculty = session.get(Faculty, placement["faculty_id"]) if placement["faculty_id"] is not None else None
        scope = access.scope_of(profiles.current(user.id, session))
        try:
            access.check_self_placement(
                scope,
                new_faculty_id=placement["faculty_id"],
                placement_changed=True,
                policy=access.EnrolmentPolicy(faculty.enrolment_policy) if faculty else None,
                key_hash=faculty.enrolment_key_hash if faculty else None,
                enrolment_key=str(enrolment_key) if enrolment_key else None,
            )
        except Forbidden as exc:
            audit(
                "user.placement",
                "denied",
                actor=user.id,
                target=user.id,
                via="self",
                reason=exc.code,
                faculty_id=placement["faculty_id"],
            )
            raise
        apply_placement(session, user, placement, actor=user.id, via="self")
    session.flush()
    profiles.forget_after_commit(session, user.id)
    audit("user.profile_update", "ok", actor=user.id, target=user.id, fields=sorted(changes))
    return user


def new_placement(user: User, changes: dict[str, object]) -> dict[str, int | None]:
    """The placement after `changes`: moving faculty drops the old department and semester unless
    they are replaced too."""
    placement = {key: getattr(user, key) for key in PLACEMENT_FIELDS}
    if "faculty_id" in changes and changes["faculty_id"] != user.faculty_id:
        placement.update(department_id=None, semester_id=None)
    placement.update({key: value for key, value in changes.items() if key in placement})
    return placement


def apply_placement(session: Session, user: User, placement: dict[str, int | None], *, actor: str, via: str) -> None:
    """Validate (422 for unknown ids or another faculty's department/semester), store and audit."""
    from aiteacher.academics.service import check_placement

    check_placement(session, placement["faculty_id"], placement["department_id"], placement["semester_id"])
    before = {key: getattr(user, key) for key in PLACEMENT_FIELDS}
    for key, value in placement.items():
        setattr(user, key, value)
    session.flush()
    profiles.forget_after_commit(session, user.id)
    audit("user.placement", "ok", actor=actor, target=user.id, via=via, before=before, after=dict(placement))
