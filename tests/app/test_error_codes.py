"""Every error code is a member of the one enum (facever.model.errors.ErrorCode), raised with the enum's
status, and documented in the OpenAPI descriptions of that status."""

from __future__ import annotations

import ast
from pathlib import Path

from facever.app.api.responses import _DESCRIPTIONS, IDENTITY_INPUT_DESCRIPTION, OWN_ENDPOINT_CODES
from facever.model.errors import ErrorCode

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    p for folder in ("app", "model") for p in (REPO / folder).rglob("*.py") if "migrations" not in p.parts
)

# call -> (index of the status argument or None, index of the code argument)
_CALLS = {
    "ApiError": (0, 1),
    "error_response": (1, 2),
    "envelope": (None, 0),
    "ImageError": (None, 0),
    "PydanticCustomError": (None, 0),
}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _code_sites():
    """(where, status or None, code node) of every place a code is given: the calls above and every
    ``{"code": ...}``."""
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call) and _name(node.func) in _CALLS:
                status_at, code_at = _CALLS[_name(node.func)]
                if len(node.args) > code_at:
                    status = node.args[status_at] if status_at is not None else None
                    status = status.value if isinstance(status, ast.Constant) else None
                    yield where, status, node.args[code_at]
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "code":
                        yield where, None, value


def test_codes_are_given_as_members_of_the_enum_with_its_status():
    sites = list(_code_sites())
    assert len(sites) > 40  # the scan finds the raises
    literal, unknown, wrong_status = [], [], []
    for where, status, node in sites:
        if isinstance(node, ast.Constant):
            literal.append((where, node.value))
        elif isinstance(node, ast.Attribute) and _name(node.value) == "ErrorCode":
            if node.attr not in ErrorCode.__members__:
                unknown.append((where, node.attr))
            elif status is not None and ErrorCode[node.attr].status != status:
                wrong_status.append((where, node.attr, status))
    assert not literal, f"codes written as strings, not ErrorCode members: {literal}"
    assert not unknown and not wrong_status, (unknown, wrong_status)


def test_no_code_string_outside_the_enum():
    # a member's string anywhere else in the service's code is a code written by hand
    values = {code.value for code in ErrorCode}
    found = []
    for path in SOURCES:
        if path.name == "errors.py" and path.parent.name == "model":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in values:
                found.append((f"{path.relative_to(REPO)}:{node.lineno}", node.value))
    assert not found, found


def test_every_member_has_a_status_and_a_description():
    for code in ErrorCode:
        assert 400 <= code.status < 600 and code.description, code
        assert code.value == code.name.lower()


def test_every_member_is_in_the_description_of_its_status():
    for code in set(ErrorCode) - OWN_ENDPOINT_CODES:
        assert f"{code.value} ({code.description})" in _DESCRIPTIONS[code.status], code
    for code in (
        "invalid_request",
        "invalid_json",
        "invalid_character",
        "invalid_metadata",
        "metadata_too_large",
    ):
        assert code in IDENTITY_INPUT_DESCRIPTION


def test_the_openapi_documents_every_member_of_each_documented_status(sqlite_client):
    spec = sqlite_client.get("/openapi.json").json()
    descriptions: dict[int, str] = {}
    for operations in spec["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    descriptions[int(status)] = descriptions.get(int(status), "") + response["description"]
    undocumented = sorted({code.status for code in ErrorCode} - set(descriptions))
    # 405, 406 (any path, from the framework) and 500 (a bug) are not in any operation's responses
    assert undocumented == [405, 406, 500]
    for code in ErrorCode:
        if code.status in descriptions:
            assert code.value in descriptions[code.status], code
