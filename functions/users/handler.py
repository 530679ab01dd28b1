"""users: user administration (admins) and student placement and enrolment (a faculty's academics)."""

from typing import Annotated, Any

from fastapi import Path, Query

from aiteacher.academics.schemas import Enrolment, EnrolmentChange
from aiteacher.identity.schemas import PlacementChange, Role, RoleChange, UserPage, UserRecord
from aiteacher.web import CurrentUser, Db, ReadDb, create_app, lambda_handler

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
    db: ReadDb,
    q: Annotated[str | None, Query(max_length=100)] = None,
    email: Annotated[str | None, Query(max_length=320, description="Exact email: one account")] = None,
    role: Role | None = None,
    faculty_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> UserPage:
    from aiteacher import access
    from aiteacher.identity import admin

    actor = access.caller_scope(caller, db)
    if email:
        users, total = [admin.find_student_by_email(db, actor, email)], 1
    else:
        users, total = admin.list_users(
            db, actor, query=q, role=role, faculty_id=faculty_id, active=active, limit=limit, offset=offset
        )
    return UserPage(users=[admin.user_record(u) for u in users], total=total, limit=limit, offset=offset)


@app.get("/enrolment/{faculty_id}", response_model=Enrolment, responses=DENIED)
def read_enrolment(faculty_id: FacultyId, caller: CurrentUser, db: ReadDb) -> Enrolment:
    from aiteacher import access
    from aiteacher.academics import service

    return service.get_enrolment(db, access.caller_scope(caller, db), faculty_id)


@app.put("/enrolment/{faculty_id}", response_model=Enrolment, responses=DENIED)
def set_enrolment(faculty_id: FacultyId, body: EnrolmentChange, caller: CurrentUser, db: Db) -> Enrolment:
    from aiteacher import access
    from aiteacher.academics import service

    return service.set_enrolment_policy(db, access.caller_scope(caller, db), faculty_id, body.policy)


@app.post("/enrolment/{faculty_id}/key", response_model=Enrolment, responses=DENIED)
def rotate_enrolment_key(faculty_id: FacultyId, caller: CurrentUser, db: Db) -> Enrolment:
    from aiteacher import access
    from aiteacher.academics import service

    return service.rotate_enrolment_key(db, access.caller_scope(caller, db), faculty_id)


@app.get("/{user_id}", response_model=UserRecord, responses=DENIED)
def read_user(user_id: UserId, caller: CurrentUser, db: ReadDb) -> UserRecord:
    from aiteacher import access
    from aiteacher.identity import admin

    return admin.user_record(admin.get_account(db, access.caller_scope(caller, db), user_id))


@app.put("/{user_id}/role", response_model=UserRecord, responses=DENIED)
def change_role(user_id: UserId, body: RoleChange, caller: CurrentUser, db: Db) -> UserRecord:
    from aiteacher import access
    from aiteacher.identity import admin

    actor = access.caller_scope(caller, db)
    return admin.user_record(admin.change_role(db, actor, user_id, access.Role(body.role)))


@app.put(
    "/{user_id}/placement",
    response_model=UserRecord,
    responses={**DENIED, 422: {"description": "Unknown ids, or a department/semester of another faculty"}},
)
def place_user(user_id: UserId, body: PlacementChange, caller: CurrentUser, db: Db) -> UserRecord:
    from aiteacher import access
    from aiteacher.identity import admin

    actor = access.caller_scope(caller, db)
    return admin.user_record(admin.place(db, actor, user_id, body.model_dump()))


@app.post("/{user_id}/deactivate", response_model=UserRecord, responses=DENIED)
def deactivate(user_id: UserId, caller: CurrentUser, db: Db) -> UserRecord:
    return _set_active(user_id, caller, db, False)


@app.post("/{user_id}/reactivate", response_model=UserRecord, responses=DENIED)
def reactivate(user_id: UserId, caller: CurrentUser, db: Db) -> UserRecord:
    return _set_active(user_id, caller, db, True)


def _set_active(user_id: str, caller: CurrentUser, db: Db, active: bool) -> UserRecord:
    from aiteacher import access
    from aiteacher.identity import admin

    actor = access.caller_scope(caller, db)
    return admin.user_record(admin.set_active(db, actor, user_id, active))


handler = lambda_handler(app)
