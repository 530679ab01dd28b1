"""The base of the reply models each domain's `schemas.py` defines for routes whose service builds a
plain dict. They name the contract's fields (DESIGN.md section 3) and allow more (`extra="allow"`): a
field a domain adds is passed through, never silently dropped. So every route documents its body and
schemathesis can check it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")
