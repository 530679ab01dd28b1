"""ingest: academics (own faculty) and admins upload a lecture PDF; ingestion runs as an RQ job."""

from typing import Annotated

from fastapi import Depends, File, Form, UploadFile

from aiteacher.bounds import MAX_ID
from aiteacher.replies import IngestAccepted
from aiteacher.security.tokens import Claims
from aiteacher.web import create_app, lambda_handler, require_roles

app = create_app("ingest", "Upload a lecture PDF", max_body_setting="ingest_max_bytes")
Uploader = Annotated[Claims, Depends(require_roles("academic", "admin"))]


@app.post("/", status_code=202, response_model=IngestAccepted,
          responses={403: {"description": "Not an academic/admin, or another faculty"},
                     409: {"description": "An academic not yet placed in a faculty (`profile_incomplete`)"},
                     413: {"description": "Larger than INGEST_MAX_BYTES"},
                     415: {"description": "Not a PDF"}})
def ingest(caller: Uploader, file: Annotated[UploadFile, File(description="The lecture PDF")],
           course: Annotated[str, Form(min_length=1, max_length=100)],
           faculty_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
           semester_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None) -> dict:
    from aiteacher.curriculum import service
    from aiteacher.db import transaction

    data = service.read_pdf_upload(file.file)
    with transaction() as session:
        target = service.resolve_upload_target(session, caller, faculty_id, semester_id)
        doc = service.create_upload(session, caller, target, course=course, filename=file.filename or "upload.pdf",
                                    data=data)
    return {"document_id": doc.id, "status": doc.status, "key": doc.object_key}


handler = lambda_handler(app)
