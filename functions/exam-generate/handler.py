"""exam-generate: queue an exam (MCQ + theory, with keys) built from the caller's course material."""

from typing import Literal

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field

from aiteacher.bounds import MAX_ID
from aiteacher.exams.schemas import Blueprint
from aiteacher.replies import ExamAccepted
from aiteacher.web import CurrentUser, create_app, lambda_handler

app = create_app("exam-generate", "Generate a practice exam")


class ExamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_mcq: int = Field(ge=0, le=100)
    num_theory: int = Field(ge=0, le=50)
    course: str | None = Field(None, max_length=100)
    topic: str | None = Field(None, max_length=200)
    difficulty: Literal["easy", "medium", "hard"] | None = None
    semester_id: int | None = Field(None, ge=1, le=MAX_ID, description="Academics and admins")
    faculty_id: int | None = Field(None, ge=1, le=MAX_ID, description="Admins")
    blueprint: Blueprint | None = Field(None, description="Difficulty mix, Bloom levels, documents or page ranges")


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
def generate(body: ExamRequest, caller: CurrentUser, response: Response) -> dict:
    from aiteacher.db import transaction
    from aiteacher.exams.service import request_exam

    with transaction() as session:
        exam = request_exam(
            session,
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
    return {"exam_id": exam.id, "status": exam.status}


handler = lambda_handler(app)
