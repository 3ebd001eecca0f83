"""Conditions on event properties and lead attributes, and what they mean.

A condition tests one value. Its meaning is defined here, in Python, once; the batch
engine compiles the same tests to SQL (``pyrometer.engines.sql_conditions``) and a
property test checks the two agree on random values. The rules a marketer expects:

- Text tests ignore case and the spaces around a value (``"Student "`` equals ``student``).
- A value is *missing* when it is absent, null, or one of the playbook's placeholders
  (``""``, ``Select``, ``N/A``...); a missing value fails every test but ``missing: true``,
  so ``not: {contains: student}`` is true for a lead without a job title.
- Numeric tests (``gt``, ``gte``, ``lt``, ``lte``, numeric ``equals``) read the value as a
  decimal number and fail when it is not one.
- Several tests in one condition must all hold.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MISSING_VALUES: tuple[str, ...] = ("", "select", "na", "n/a", "-", "null", "none", "nan")
TRUE_TEXTS: tuple[str, ...] = ("true", "t", "yes", "y", "1")
FALSE_TEXTS: tuple[str, ...] = ("false", "f", "no", "n", "0")
NUMBER_PATTERN = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_NUMBER = re.compile(NUMBER_PATTERN)
# Python's ``re`` and DuckDB's RE2 agree on everything but these.
_UNPORTABLE_REGEX = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=")

Scalar = str | int | float | bool


def normalize_name(name: str) -> str:
    """``"Do Not Email"`` → ``do_not_email``: how columns, properties and events are matched.

    Letters, digits and combining marks of any script are kept (in NFKC, lower case), so
    ``注册`` or ``Téléchargé`` keep their meaning and stay apart from each other; every
    other run of characters is one ``_``. ASCII names take the short path, same answer.
    """
    if name.isascii():
        return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    text = unicodedata.normalize("NFKC", name).lower()
    kept = (ch if ch.isalnum() or unicodedata.category(ch)[0] == "M" else " " for ch in text)
    return "_".join("".join(kept).split())


def as_text(value: Any) -> str | None:
    """The text a condition sees; the same text DuckDB's ``CAST(x AS VARCHAR)`` gives."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def as_number(value: Any) -> float | None:
    """The number a numeric test sees, or ``None`` when the value is not a decimal number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return None if math.isnan(number) else number
    text = str(value).strip(" ")
    if not _NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


class Condition(BaseModel):
    """Tests on one value; every test given must hold."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    equals: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in")
    contains: tuple[str, ...] | None = None
    regex: str | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    missing: bool | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @field_validator("contains", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("contains")
    @classmethod
    def _no_empty_needle(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or any(not needle for needle in value)):
            raise ValueError("contains needs at least one non-empty text")
        return value

    @field_validator("regex")
    @classmethod
    def _portable_regex(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        if _UNPORTABLE_REGEX.search(value):
            raise ValueError(
                f"regular expression {value!r} uses look-around or a back-reference, "
                "which the batch engine (RE2) cannot run"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``"x"`` means ``{equals: x}``; ``[a, b]`` means ``{in: [a, b]}``."""
        if isinstance(value, list | tuple):
            return {"in": list(value)}
        if value is None or isinstance(value, str | int | float | bool):
            return {"equals": value} if value is not None else {"missing": True}
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_fields_set:
            raise ValueError("a condition needs at least one test (equals, in, contains, ...)")
        return self

    def tests(self) -> dict[str, Any]:
        """The tests this condition sets, by their YAML names."""
        return {
            (field.alias or name): getattr(self, name)
            for name, field in type(self).model_fields.items()
            if name in self.model_fields_set
        }

    def matches(self, value: Any, missing_values: Iterable[str] = DEFAULT_MISSING_VALUES) -> bool:
        """Whether ``value`` passes every test of this condition."""
        missing_set = frozenset(missing_values)
        text = as_text(value)
        is_missing = text is None or text.strip(" ").lower() in missing_set
        if self.missing is not None and is_missing != self.missing:
            return False
        if self.not_ is not None and self.not_.matches(value, missing_set):
            return False
        value_tests = self.model_fields_set - {"missing", "not_"}
        if not value_tests:
            return True
        if is_missing or text is None:
            return False
        if self.equals is not None and not _equals(text, value, self.equals):
            return False
        if self.in_ is not None and not any(_equals(text, value, item) for item in self.in_):
            return False
        if self.contains is not None:
            lowered = text.lower()
            if not any(needle.lower() in lowered for needle in self.contains):
                return False
        if self.regex is not None and not re.search(self.regex, text, re.IGNORECASE):
            return False
        bounds = (self.gt, self.gte, self.lt, self.lte)
        if any(bound is not None for bound in bounds):
            number = as_number(value)
            if number is None:
                return False
            if self.gt is not None and not number > self.gt:
                return False
            if self.gte is not None and not number >= self.gte:
                return False
            if self.lt is not None and not number < self.lt:
                return False
            if self.lte is not None and not number <= self.lte:
                return False
        return True


def _equals(text: str, value: Any, expected: Scalar) -> bool:
    if isinstance(expected, bool):
        accepted = TRUE_TEXTS if expected else FALSE_TEXTS
        return text.strip(" ").lower() in accepted
    if isinstance(expected, int | float):
        number = as_number(value)
        return number is not None and number == float(expected)
    return text.strip(" ").lower() == expected.strip(" ").lower()


class Where(BaseModel):
    """Conditions on named fields (event properties or lead attributes), all of which must hold.

    Field names are normalised with :func:`normalize_name`, so ``Job Title`` in an export
    and ``job_title`` in the playbook are the same field.
    """

    model_config = ConfigDict(frozen=True)

    fields: dict[str, Condition] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "fields" not in value:
            return {"fields": {normalize_name(str(key)): cond for key, cond in value.items()}}
        return value

    def matches(
        self, record: Mapping[str, Any], missing_values: Iterable[str] = DEFAULT_MISSING_VALUES
    ) -> bool:
        """``record`` must have normalised keys (see :func:`normalize_record`)."""
        missing_set = frozenset(missing_values)
        return all(
            cond.matches(record.get(name), missing_set) for name, cond in self.fields.items()
        )


def normalize_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record's keys normalised the way :class:`Where` looks them up."""
    return {normalize_name(str(key)): value for key, value in record.items()}
