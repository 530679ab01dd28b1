"""exam-generate: queue an exam (MCQ + theory, with keys) built from the caller's course material."""

from fastapi import Response

from aiteacher.exams.schemas import ExamAccepted, ExamRequest
from aiteacher.web import CurrentUser, Db, create_app, lambda_handler

app = create_app("exam-generate", "Generate a practice exam")


@app.post(
    "/",
    status_code=202,
    response_model=ExamAccepted,
    responses={
        202: {
            "description": "Queued",
            "headers": {
                "Location": {
                    "description": "Poll this for status and progress: /exams/{exam_id}",
                    "schema": {"type": "string"},
                }
            },
        },
        409: {"description": "The profile has no faculty/semester yet"},
    },
)
def generate(body: ExamRequest, caller: CurrentUser, db: Db, response: Response) -> ExamAccepted:
    from aiteacher.exams.service import request_exam

    exam = request_exam(
        db,
        caller,
        num_mcq=body.num_mcq,
        num_theory=body.num_theory,
        course=body.course,
        topic=body.topic,
        difficulty=body.difficulty,
        semester_id=body.semester_id,
        faculty_id=body.faculty_id,
        blueprint=body.blueprint.model_dump(exclude_none=True) if body.blueprint else None,
    )
    response.headers["Location"] = f"/exams/{exam.id}"
    return ExamAccepted(exam_id=exam.id, status=exam.status)


handler = lambda_handler(app)
