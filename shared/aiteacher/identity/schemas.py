"""Request and response bodies of the identity functions (pydantic only: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from aiteacher.bounds import MAX_ID
from aiteacher.enums import Role


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=8, max_length=128)
    full_name: str = Field(min_length=1, max_length=200)
    role: Role = Role.STUDENT


class RegisterOut(BaseModel):
    id: str
    email: str
    role: Role


class LoginIn(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    refresh_expires_in: int


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(None, max_length=4096)


class Profile(BaseModel):
    id: str
    email: str
    full_name: str
    role: Role
    faculty_id: int | None
    department_id: int | None
    semester_id: int | None
    push_enabled: bool = False


class ProfileUpdate(BaseModel):
    """Any subset of the four profile fields; an explicit null clears a placement."""

    model_config = ConfigDict(extra="forbid")
    full_name: str | None = Field(None, min_length=1, max_length=200)
    faculty_id: int | None = Field(None, ge=1, le=MAX_ID)
    department_id: int | None = Field(None, ge=1, le=MAX_ID)
    semester_id: int | None = Field(None, ge=1, le=MAX_ID)
    push_token: str | None = Field(
        None, min_length=1, max_length=4096, description="FCM registration token of this device; null stops push"
    )
    enrolment_key: str | None = Field(
        None, min_length=1, max_length=64, description="Needed to enter a faculty whose enrolment policy is `key`"
    )


# --- user administration (the `users` function) ---------------------------------------------------


class UserRecord(BaseModel):
    id: str
    email: str
    full_name: str
    role: Role
    faculty_id: int | None
    department_id: int | None
    semester_id: int | None
    is_active: bool
    created_at: str


class UserPage(BaseModel):
    users: list[UserRecord]
    total: int
    limit: int
    offset: int


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


class PlacementChange(BaseModel):
    """The whole placement (an omitted field is cleared), of another user."""

    model_config = ConfigDict(extra="forbid")
    faculty_id: int | None = Field(None, ge=1, le=2**31 - 1)
    department_id: int | None = Field(None, ge=1, le=2**31 - 1)
    semester_id: int | None = Field(None, ge=1, le=2**31 - 1)
