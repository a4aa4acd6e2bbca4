"""The README stays true to the code: its configuration table lists every setting with its default,
and its set-up section has exactly the two commands the Makefile provides."""

from __future__ import annotations

import re
from pathlib import Path

from facever.app.core.config import Settings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match, f"README has no section '## {title}'"
    return match.group(1)


def test_configuration_table_lists_every_setting():
    rows = re.findall(r"^\| `(FACEVER_[A-Z0-9_]+)` \| ([^|]+) \|", _section("Configuration"), re.M)
    documented = {name: default.strip() for name, default in rows}
    settings = {f"FACEVER_{name.upper()}": field for name, field in Settings.model_fields.items()}
    missing, unknown = set(settings) - set(documented), set(documented) - set(settings)
    assert not missing and not unknown, f"missing: {sorted(missing)}, unknown: {sorted(unknown)}"
    for name, field in settings.items():
        default = field.default
        if hasattr(default, "get_secret_value"):
            default = default.get_secret_value()
        if default in (None, ""):
            continue  # "the shipped model", "empty", ...: described in words
        shown = documented[name]
        expected = str(default).lower() if isinstance(default, bool) else str(default)
        assert f"`{expected}`" in shown, f"{name}: the README says {shown}, the code {expected!r}"


def test_two_setup_commands_and_the_makefile_has_them():
    block = re.search(r"```sh\n(.*?)```", _section("Set-up: two commands"), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make run", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


# Codes the README's table does not list yet (its owner adds them; then this set is emptied: the test
# fails while a code is both here and in the table).
_NOT_YET_IN_README: set[str] = set()  # codes the README does not list yet (none)


def test_limits_table_lists_every_error_code_under_its_status():
    from facever.model.errors import ErrorCode

    rows = re.findall(r"^\| (\d{3}) \| (.+) \|$", _section("Limits and hardening"), re.M)
    listed = {code: int(status) for status, codes in rows for code in re.findall(r"`([a-z0-9_]+)`", codes)}
    members = {code.value: code.status for code in ErrorCode}
    unknown = {code for code in listed if code not in members and code not in {"offset"}}
    assert not unknown, f"the README lists codes the service does not have: {sorted(unknown)}"
    wrong = {
        code: (listed[code], members[code])
        for code in listed
        if code in members and listed[code] != members[code]
    }
    assert not wrong, f"(README status, code's status): {wrong}"
    missing = set(members) - set(listed)
    assert missing == _NOT_YET_IN_README, (
        f"missing from the README: {sorted(missing - _NOT_YET_IN_README)}; "
        f"now listed, drop from _NOT_YET_IN_README: {sorted(_NOT_YET_IN_README - missing)}"
    )


def test_quick_start_verify_answer_has_every_field_the_service_answers_with():
    """The quick start's full verify answer is a real one: it validates against the response schema
    and shows every field a verify answer holds (a field added to the API shows up here)."""
    import json

    from facever.app.schemas import FaceOut, QualityOut, VerifyResponse

    section = _section("Quick start")
    answer = json.loads(re.search(r"^(\{\n  \"verified\".*?^\})$", section, re.M | re.S).group(1))
    VerifyResponse.model_validate(answer)
    assert set(answer) == set(VerifyResponse.model_fields)
    optional_face_fields = {"crop_png"}  # include_crop=true only
    for face in answer["faces"]:
        assert set(face) == set(FaceOut.model_fields) - optional_face_fields
        assert set(face["quality"]) == set(QualityOut.model_fields)
    assert "base64" in section and "Content-Type: application/json" in section  # the JSON form too
