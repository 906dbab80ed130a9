"""Check JSON bodies against Alpaca's OpenAPI 3.0 schemas (the subset its specs use).

``OpenApi(path)`` loads a spec (tests/support/mini_yaml.py); ``response_schema(path, method, status)``
is the JSON schema of a documented response; ``errors(schema, value)`` lists every mismatch as
``"$.a[0].b: message"``. Checked: ``$ref``, ``type`` (with ``nullable``), ``enum``, ``required``,
``properties``, ``items``, ``additionalProperties`` (a schema, or ``false``), ``allOf`` / ``anyOf`` /
``oneOf``, ``minLength`` and ``format: date-time`` / ``date``. Everything else is not checked.

Alpaca publishes the specs with its API reference (https://docs.alpaca.markets/reference); Heron does
not ship them. ``HERON_ALPACA_SPECS`` names the directory that holds the two files, else the first
``shared/specs`` directory above the repository that holds them (see :func:`spec_dir`); without
them the spec tests skip.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

from tests.support import mini_yaml

REPO = Path(__file__).resolve().parents[2]
SPEC_FILES = ("alpaca-trading-openapi.yaml", "alpaca-market-data-openapi.yaml")


def spec_dir() -> Path | None:
    env = os.environ.get("HERON_ALPACA_SPECS")
    if env:
        return Path(env)
    for parent in REPO.parents:
        candidate = parent / "shared" / "specs"
        if all((candidate / f).is_file() for f in SPEC_FILES):
            return candidate
    return None


class OpenApi:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc: dict[str, Any] = mini_yaml.load(path)

    def ref(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported: {ref}")
        node: Any = self.doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def schema(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def response_schema(self, path: str, method: str = "get", status: str = "200") -> dict[str, Any]:
        op = self.doc["paths"][path][method]
        response = op["responses"][status]
        if "$ref" in response:
            response = self.ref(response["$ref"])
        schema: dict[str, Any] = response["content"]["application/json"]["schema"]
        return schema

    def errors(self, schema: Any, value: Any, where: str = "$") -> list[str]:
        out: list[str] = []
        self._check(schema, value, where, out)
        return out

    def _check(self, schema: Any, value: Any, where: str, out: list[str]) -> None:
        if not isinstance(schema, dict):
            return
        if "$ref" in schema:
            self._check(self.ref(schema["$ref"]), value, where, out)
            return
        if value is None:
            if not schema.get("nullable") and ("type" in schema or "$ref" in schema or "enum" in schema):
                out.append(f"{where}: null where the spec does not allow it (nullable is not set)")
            return
        for sub in schema.get("allOf", ()):
            self._check(sub, value, where, out)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if options and not any(not self.errors(o, value, where) for o in options):
                out.append(f"{where}: matches none of the {key} schemas")
        kind = schema.get("type")
        if kind is not None and not _is_type(kind, value):
            out.append(f"{where}: expected {kind}, got {type(value).__name__} {value!r:.60}")
            return
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{where}: {value!r} is not one of {schema['enum']}")
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0):
                out.append(f"{where}: shorter than {schema['minLength']}")
            fmt = schema.get("format")
            if fmt == "date-time" and not _is_datetime(value):
                out.append(f"{where}: {value!r} is not an RFC 3339 date-time")
            if fmt == "date" and not _is_date(value):
                out.append(f"{where}: {value!r} is not a date")
        if isinstance(value, dict):
            for name in schema.get("required", ()):
                if name not in value:
                    out.append(f"{where}: missing required property {name!r}")
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for name, item in value.items():
                if name in props:
                    self._check(props[name], item, f"{where}.{name}", out)
                elif extra is False:
                    out.append(f"{where}: property {name!r} is not allowed")
                elif isinstance(extra, dict):
                    self._check(extra, item, f"{where}.{name}", out)
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                self._check(schema["items"], item, f"{where}[{i}]", out)


def _is_type(kind: str, value: Any) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _is_datetime(text: str) -> bool:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
