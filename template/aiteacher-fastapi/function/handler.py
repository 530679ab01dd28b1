"""FUNCTION-NAME: one line saying what this function does and who may call it."""

from aiteacher.web import create_app, lambda_handler

app = create_app("FUNCTION-NAME", "One-line summary for the OpenAPI document")


@app.get("/")
def index() -> dict[str, str]:
    return {"status": "ok"}


handler = lambda_handler(app)
