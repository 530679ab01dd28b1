"""users: user administration (admins) and student placement and enrolment (a faculty's academics)."""

from typing import Annotated, Any

from fastapi import Path, Query

from aiteacher.identity.schemas import (
    Enrolment,
    EnrolmentChange,
    PlacementChange,
    Role,
    RoleChange,
    UserPage,
    UserRecord,
)
from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("users", "User administration, placement and faculty enrolment")
UserId = Annotated[str, Path(min_length=1, max_length=36)]
FacultyId = Annotated[int, Path(ge=1, le=2**31 - 1)]
DENIED: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not allowed by the access policy (`forbidden`)"},
    404: {"description": "No such user or faculty (or not one the caller may see)"},
}


@app.get("/", response_model=UserPage, responses=DENIED)
def list_users(
    caller: CurrentUser,
    q: Annotated[str | None, Query(max_length=100)] = None,
    email: Annotated[str | None, Query(max_length=320, description="Exact email: one account")] = None,
    role: Role | None = None,
    faculty_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> UserPage:
    from aiteacher import access
    from aiteacher.db import transaction
    from aiteacher.identity import admin

    with transaction(read_only=True) as session:
        actor = access.caller_scope(caller, session)
        if email:
            users, total = [admin.find_student_by_email(session, actor, email)], 1
        else:
            users, total = admin.list_users(
                session, actor, query=q, role=role, faculty_id=faculty_id, active=active, limit=limit, offset=offset
            )
        return UserPage(
            users=[UserRecord(**admin.user_record(u)) for u in users], total=total, limit=limit, offset=offset
        )


@app.get("/enrolment/{faculty_id}", response_model=Enrolment, responses=DENIED)
def read_enrolment(faculty_id: FacultyId, caller: CurrentUser) -> Enrolment:
    from aiteacher import access
    from aiteacher.academics import service
    from aiteacher.db import transaction

    with transaction(read_only=True) as session:
        return Enrolment(**service.get_enrolment(session, access.caller_scope(caller, session), faculty_id))


@app.put("/enrolment/{faculty_id}", response_model=Enrolment, responses=DENIED)
def set_enrolment(faculty_id: FacultyId, body: EnrolmentChange, caller: CurrentUser) -> Enrolment:
    from aiteacher import access
    from aiteacher.academics import service
    from aiteacher.db import transaction

    with transaction() as session:
        actor = access.caller_scope(caller, session)
        return Enrolment(**service.set_enrolment_policy(session, actor, faculty_id, body.policy))


@app.post("/enrolment/{faculty_id}/key", response_model=Enrolment, responses=DENIED)
def rotate_enrolment_key(faculty_id: FacultyId, caller: CurrentUser) -> Enrolment:
    from aiteacher import access
    from aiteacher.academics import service
    from aiteacher.db import transaction

    with transaction() as session:
        return Enrolment(**service.rotate_enrolment_key(session, access.caller_scope(caller, session), faculty_id))


@app.get("/{user_id}", response_model=UserRecord, responses=DENIED)
def read_user(user_id: UserId, caller: CurrentUser) -> UserRecord:
    from aiteacher import access
    from aiteacher.db import transaction
    from aiteacher.identity import admin

    with transaction(read_only=True) as session:
        return UserRecord(
            **admin.user_record(admin.get_account(session, access.caller_scope(caller, session), user_id))
        )


@app.put("/{user_id}/role", response_model=UserRecord, responses=DENIED)
def change_role(user_id: UserId, body: RoleChange, caller: CurrentUser) -> UserRecord:
    from aiteacher import access
    from aiteacher.db import transaction
    from aiteacher.identity import admin

    with transaction() as session:
        actor = access.caller_scope(caller, session)
        return UserRecord(**admin.user_record(admin.change_role(session, actor, user_id, access.Role(body.role))))


@app.put(
    "/{user_id}/placement",
    response_model=UserRecord,
    responses={**DENIED, 422: {"description": "Unknown ids, or a department/semester of another faculty"}},
)
def place_user(user_id: UserId, body: PlacementChange, caller: CurrentUser) -> UserRecord:
    from aiteacher import access
    from aiteacher.db import transaction
    from aiteacher.identity import admin

    with transaction() as session:
        actor = access.caller_scope(caller, session)
        return UserRecord(**admin.user_record(admin.place(session, actor, user_id, body.model_dump())))


@app.post("/{user_id}/deactivate", response_model=UserRecord, responses=DENIED)
def deactivate(user_id: UserId, caller: CurrentUser) -> UserRecord:
    return _set_active(user_id, caller, False)


@app.post("/{user_id}/reactivate", response_model=UserRecord, responses=DENIED)
def reactivate(user_id: UserId, caller: CurrentUser) -> UserRecord:
    return _set_active(user_id, caller, True)


def _set_active(user_id: str, caller: CurrentUser, active: bool) -> UserRecord:
    from aiteacher import access
    from aiteacher.db import transaction
    from aiteacher.identity import admin

    with transaction() as session:
        actor = access.caller_scope(caller, session)
        return UserRecord(**admin.user_record(admin.set_active(session, actor, user_id, active)))


handler = lambda_handler(app)
