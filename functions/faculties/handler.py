"""faculties: the academic hierarchy (faculties with their departments and semesters). Public."""

from fastapi import Response

from aiteacher.academics.schemas import FacultyOut
from aiteacher.web import ReadDb, create_app, lambda_handler

app = create_app("faculties", "List faculties, departments and semesters")
CACHE_SECONDS = 300


@app.get("/", response_model=list[FacultyOut])
def list_faculties(db: ReadDb, response: Response) -> list[FacultyOut]:
    from aiteacher.academics.service import list_faculties

    faculties = list_faculties(db)
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return faculties


handler = lambda_handler(app)
