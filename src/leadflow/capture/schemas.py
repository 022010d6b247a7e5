"""Form definitions: what staff save, checked at save time so that a saved form always renders and
validates.

Rules:

* Every form has exactly one ``email`` field named ``email``, required: a submission becomes a contact
  by its address.
* Field names are lower-case identifiers, unique, and none of the names the form itself uses (the UTM
  fields, ``consent``, the honeypot, ``page_url``, ``referrer``, ``anonymous_id``).
* ``select`` fields list their options; no other type has options. A ``pattern`` must compile; it is
  matched against the whole value.
* Fields named ``first_name``, ``last_name`` and ``phone`` fill the contact's columns; every other field
  is a trait of the contact.
* An allowed origin is ``scheme://host[:port]`` (what a browser sends as ``Origin``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FieldType = Literal["email", "text", "textarea", "tel", "select", "checkbox", "number", "hidden"]
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
HONEYPOT = "lf_website"
CONSENT = "consent"
RESERVED = frozenset({*UTM_FIELDS, HONEYPOT, CONSENT, "page_url", "referrer", "anonymous_id"})
NAME = r"^[a-z][a-z0-9_]{0,63}$"
DEFAULT_MAX_LENGTH = 1000


class FormField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME, description="the input's name (first_name, last_name, phone fill the contact)"
    )
    label: str = Field(min_length=1, max_length=200)
    type: FieldType = "text"
    required: bool = False
    options: list[str] | None = Field(default=None, max_length=100, description="select only")
    max_length: int | None = Field(default=None, ge=1, le=10_000, description=f"default {DEFAULT_MAX_LENGTH}")
    pattern: str | None = Field(
        default=None, max_length=500, description="a regular expression the whole value matches"
    )
    value: str | None = Field(default=None, max_length=1000, description="a hidden field's value")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"the pattern does not compile: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _options(self) -> FormField:
        if self.type == "select" and not self.options:
            raise ValueError(f"the select field {self.name} needs options")
        if self.type != "select" and self.options:
            raise ValueError(f"only a select field has options ({self.name} is {self.type})")
        if self.options and any(not o or len(o) > 200 for o in self.options):
            raise ValueError("an option is 1 to 200 characters")
        return self

    @property
    def limit(self) -> int:
        return self.max_length or DEFAULT_MAX_LENGTH


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1, max_length=2000, description="what the person agrees to (stored with each submission)"
    )


class FormFields(BaseModel):
    """A form as staff define it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    fields: list[FormField] = Field(min_length=1, max_length=50)
    consent: Consent | None = Field(default=None, description="a required consent checkbox")
    double_opt_in: bool = Field(
        default=False, description="send a confirmation email; no marketing until confirmed"
    )
    redirect_url: str | None = Field(
        default=None, max_length=2000, description="where a browser goes after submitting"
    )
    thank_you: str = Field(default="Thank you!", min_length=1, max_length=2000)
    list_id: str | None = Field(
        default=None, max_length=26, description="a static list to add the contact to"
    )
    tags: list[str] = Field(default_factory=list, max_length=20)
    journey_id: str | None = Field(
        default=None,
        max_length=26,
        description="a journey triggered by form.submitted; the event carries this id as journey_id",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="sites that may embed and post the form (scheme://host[:port]); empty: any site",
    )

    @field_validator("redirect_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
            raise ValueError("the redirect URL is an http(s) URL")
        return url

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        return [_origin(o) for o in origins]

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        if any(not t.strip() or len(t) > 100 for t in tags):
            raise ValueError("a tag is 1 to 100 characters")
        return tags

    @model_validator(mode="after")
    def _fields(self) -> FormFields:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("field names are unique")
        if clash := sorted(RESERVED.intersection(names)):
            raise ValueError(f"{', '.join(clash)} is a name the form itself uses")
        email = [f for f in self.fields if f.type == "email"]
        if len(email) != 1 or email[0].name != "email" or not email[0].required:
            raise ValueError("a form has exactly one email field, named email and required")
        return self


def _origin(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"{value!r} is not an origin (scheme://host[:port])")
    if parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r} is not an origin (scheme://host[:port])")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class FormPatch(BaseModel):
    """Fields to change; the result is checked as a whole form."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    fields: list[FormField] | None = None
    consent: Consent | None = None
    double_opt_in: bool | None = None
    redirect_url: str | None = None
    thank_you: str | None = None
    list_id: str | None = None
    tags: list[str] | None = None
    journey_id: str | None = None
    allowed_origins: list[str] | None = None


class Form(FormFields):
    id: str
    spam_count: int = Field(description="honeypot hits: answered as a success, nothing else stored")
    url: str = Field(description="the hosted form")
    created_by: str
    created_at: datetime
    updated_at: datetime


class Embed(BaseModel):
    script: str = Field(description="a <div> and a <script> that injects the form and posts it with fetch")
    html: str = Field(description="a plain HTML form posting to the hosted form's address")


def definition_of(fields: FormFields) -> dict[str, Any]:
    return fields.model_dump(mode="json", exclude={"name"})
