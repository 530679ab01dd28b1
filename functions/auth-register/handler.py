"""auth-register: create an account. Anyone creates a student; academics and admins need an admin token."""

from fastapi import Response

from aiteacher.identity.schemas import RegisterIn, RegisterOut
from aiteacher.web import Db, OptionalUser, create_app, lambda_handler

app = create_app("auth-register", "Create an account")


@app.post(
    "/",
    status_code=201,
    response_model=RegisterOut,
    responses={
        403: {"description": "Only an admin can create academic or admin accounts"},
        409: {"description": "Email already registered"},
    },
)
def register(body: RegisterIn, caller: OptionalUser, db: Db, response: Response) -> RegisterOut:
    from aiteacher.identity import service

    user = service.register(
        db, email=body.email, password=body.password, full_name=body.full_name, role=body.role, caller=caller
    )
    response.headers["Location"] = "/me"
    return RegisterOut(id=user.id, email=user.email, role=user.role)


handler = lambda_handler(app)
