"""me: read and update the caller's profile (name, push token; students: faculty, department, semester)."""

from typing import TYPE_CHECKING

from aiteacher.identity.schemas import Profile, ProfileUpdate
from aiteacher.web import CurrentUser, Db, create_app, lambda_handler

if TYPE_CHECKING:
    from aiteacher.db.models import User

app = create_app("me", "The signed-in user's profile")


def _profile(user: "User") -> Profile:
    return Profile(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        faculty_id=user.faculty_id,
        department_id=user.department_id,
        semester_id=user.semester_id,
        push_enabled=bool(user.push_token),
    )


@app.get("/", response_model=Profile)
def read_profile(caller: CurrentUser) -> Profile:
    from aiteacher.identity import profiles

    return Profile(**profiles.current(caller.sub))


@app.put(
    "/",
    response_model=Profile,
    responses={
        403: {
            "description": "Academics/admins changing their own placement (`forbidden`); a faculty's "
            "enrolment policy refusing a student (`enrolment_key_required`, "
            "`enrolment_key_invalid`, `enrolment_managed`)"
        },
        422: {"description": "Unknown ids, or a department/semester of another faculty"},
    },
)
def update_profile(body: ProfileUpdate, caller: CurrentUser, db: Db) -> Profile:
    from aiteacher.identity import service

    return _profile(service.update_profile(db, caller, body.model_dump(exclude_unset=True)))


handler = lambda_handler(app)
