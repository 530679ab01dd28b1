"""document: list, read and delete curriculum documents (academics of the document's faculty, admins);
open one page of a ready document (also students of its faculty and semester: citations link here)."""

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Response

from aiteacher.bounds import MAX_ID, MAX_OFFSET
from aiteacher.curriculum.schemas import DocumentList, DocumentOut, PageOut
from aiteacher.enums import DocumentStatus, Role
from aiteacher.security.tokens import Claims
from aiteacher.web import CurrentUser, Db, ReadDb, create_app, lambda_handler, require_roles

app = create_app("document", "Curriculum documents and their ingestion status")
Manager = Annotated[Claims, Depends(require_roles(Role.ACADEMIC, Role.ADMIN))]


@app.get(
    "/",
    response_model=DocumentList,
    responses={409: {"description": "An academic not yet placed in a faculty (`profile_incomplete`)"}},
)
def list_documents(
    caller: Manager,
    db: ReadDb,
    course: Annotated[str | None, Query(max_length=100)] = None,
    status: DocumentStatus | None = None,
    faculty_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Admins only")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> DocumentList:
    from aiteacher.curriculum import service

    documents = service.list_documents(
        db, caller, course=course, status=status, faculty_id=faculty_id, limit=limit, offset=offset
    )
    return DocumentList.model_validate(
        {"documents": service.document_views(documents), "limit": limit, "offset": offset}
    )


@app.get(
    "/{document_id}", response_model=DocumentOut, responses={404: {"description": "Missing, or another faculty's"}}
)
def read_document(document_id: str, caller: Manager, db: ReadDb) -> DocumentOut:
    from aiteacher.curriculum import service

    return DocumentOut.model_validate(service.document_views([service.get_document(db, caller, document_id)])[0])


PageNumber = Annotated[int, Path(ge=1, le=100_000, description="1-based page number")]
_PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Missing, not ready, another tenant's, or no such page"}
}


@app.get("/{document_id}/pages/{page}", response_model=PageOut, responses=_PAGE_RESPONSES)
def read_page(document_id: str, page: PageNumber, caller: CurrentUser, db: ReadDb) -> PageOut:
    from aiteacher.curriculum import pages

    ref = pages.page_ref(db, caller, document_id, page)
    db.close()  # the connection goes back to the pool before the bucket read
    return PageOut(
        document_id=ref.document_id,
        title=ref.title,
        page=ref.page,
        pages=ref.pages,
        text=pages.page_text(ref),
        image_url=f"/documents/{ref.document_id}/pages/{ref.page}/image",
    )


@app.get(
    "/{document_id}/pages/{page}/image",
    response_class=Response,
    responses={**_PAGE_RESPONSES, 200: {"content": {"image/png": {}}}},
)
def read_page_image(document_id: str, page: PageNumber, caller: CurrentUser, db: ReadDb) -> Response:
    from aiteacher.curriculum import pages

    ref = pages.page_ref(db, caller, document_id, page)
    db.close()  # before the bucket read and the rendering
    return Response(pages.page_png(ref), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@app.delete("/{document_id}", status_code=204, response_class=Response)
def delete_document(document_id: str, caller: Manager, db: Db) -> Response:
    from aiteacher.curriculum import service

    service.delete_document(db, caller, document_id)
    return Response(status_code=204)


handler = lambda_handler(app)
