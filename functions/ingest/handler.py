"""ingest: academics (own faculty) and admins upload lecture material (PDF, .pptx, .docx, Markdown, HTML; sniffed
from the bytes); ingestion runs as an RQ job, followed at the `Location` the 202 names."""

from typing import Annotated

from fastapi import Depends, File, Form, Response, UploadFile

from aiteacher.bounds import MAX_ID
from aiteacher.curriculum.schemas import IngestAccepted
from aiteacher.enums import Role
from aiteacher.security.tokens import Claims
from aiteacher.web import Db, create_app, lambda_handler, require_roles

app = create_app("ingest", "Upload lecture material", max_body_setting="ingest_max_bytes")
Uploader = Annotated[Claims, Depends(require_roles(Role.ACADEMIC, Role.ADMIN))]


@app.post(
    "/",
    status_code=202,
    response_model=IngestAccepted,
    responses={
        202: {
            "description": "Queued",
            "headers": {
                "Location": {
                    "description": "Poll this for status and progress: /documents/{document_id}",
                    "schema": {"type": "string"},
                }
            },
        },
        403: {"description": "Not an academic/admin, or another faculty"},
        409: {"description": "An academic not yet placed in a faculty (`profile_incomplete`)"},
        413: {"description": "Larger than INGEST_MAX_BYTES"},
        415: {"description": "Not PDF, .pptx, .docx, Markdown or HTML"},
    },
)
def ingest(
    caller: Uploader,
    db: Db,
    response: Response,
    file: Annotated[UploadFile, File(description="PDF, .pptx, .docx, Markdown or HTML")],
    course: Annotated[str, Form(min_length=1, max_length=100)],
    faculty_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
    semester_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
) -> IngestAccepted:
    from aiteacher.curriculum import service

    data, kind = service.read_upload(file.file)  # before the session opens (the Db dependency is lazy)
    target = service.resolve_upload_target(db, caller, faculty_id, semester_id)
    doc, created = service.create_upload(
        db, caller, target, course=course, filename=file.filename or "upload", data=data, kind=kind
    )
    response.headers["Location"] = f"/documents/{doc.id}"
    # The same file already in this course: its document, not a second copy.
    return IngestAccepted(document_id=doc.id, status=doc.status, key=doc.object_key, format=kind, duplicate=not created)


handler = lambda_handler(app)
