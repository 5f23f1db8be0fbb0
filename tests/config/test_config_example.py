"""`config.example.yaml` documents every key of `Settings`, with a comment for each."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from cdnops.config.settings import Settings
from cdnops.config.yamlload import parse_yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"

# Sections whose keys are explained in their own doc (the example gives every key and default,
# grouped, not one comment per key).
DOCUMENTED_ELSEWHERE = {"detect": "docs/detection.md"}
# Alternatives that cannot be set at the same time as the one the example uses: shown
# commented out (`# file: ...`).
COMMENTED_ALTERNATIVES = {"appliance_token.file"}
# Lists of items whose default is empty: their item keys are shown in a commented example.
COMMENTED_EXAMPLES = {"incidents.silences"}
# Optional settings, absent by default: shown commented out, every key of them.
COMMENTED_OPTIONAL = {"mqtt", "api.write_token", "poll.retry_delay_s"}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        sub = _model_of(info.annotation)
        if sub is not None and path not in DOCUMENTED_ELSEWHERE.keys() | COMMENTED_EXAMPLES:
            yield from _keys(sub, f"{path}.")


def _present(data: Any, path: str) -> bool:
    for step in path.split("."):
        if not isinstance(data, dict) or step not in data:
            return False
        data = data[step]
    return True


def test_walk_finds_nested_keys() -> None:
    keys = set(_keys(Settings))
    assert {"poll.interval_s", "http.per_appliance_metrics", "appliance_token.env"} <= keys
    assert {"logging.format", "detect"} <= keys


def test_example_sets_every_key() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    missing = [
        path
        for path in _keys(Settings)
        if path not in COMMENTED_ALTERNATIVES and not _optional(path) and not _present(data, path)
    ]
    assert missing == []


def _optional(path: str) -> bool:
    return any(path == o or path.startswith(f"{o}.") for o in COMMENTED_OPTIONAL)


def test_optional_settings_are_shown_commented_out() -> None:
    lines = [line.strip() for line in EXAMPLE.read_text().splitlines()]
    for path in _keys(Settings):
        if _optional(path):
            key = path.rsplit(".", 1)[-1]
            assert any(re.match(rf"#\s+{key}:", line) for line in lines), path


def test_commented_alternatives_are_shown() -> None:
    lines = [line.strip() for line in EXAMPLE.read_text().splitlines()]
    for path in COMMENTED_ALTERNATIVES:
        key = path.rsplit(".", 1)[-1]
        assert any(line.startswith(f"# {key}:") for line in lines), path


def test_every_key_has_a_comment_above_it() -> None:
    doc = parse_yaml(EXAMPLE.read_text(), str(EXAMPLE))
    lines = EXAMPLE.read_text().splitlines()

    def line_of(path: str) -> int:
        node = doc.node_at(tuple(path.split(".")), key=True)
        assert node is not None, path
        return int(node.start_mark.line)  # 0-based: lines[n - 1] is the line above

    def commented(path: str) -> bool:
        return lines[line_of(path) - 1].lstrip().startswith("#")

    paths = [p for p in _keys(Settings) if p not in COMMENTED_ALTERNATIVES and not _optional(p)]
    uncommented = []
    for path in paths:
        parent = path.rpartition(".")[0]
        children = [p for p in paths if p.startswith(f"{path}.")]
        # a section is explained by its first key's comment; a lone key by its section's
        covered = (children and commented(children[0])) or (
            parent
            and [p for p in paths if p.startswith(f"{parent}.")] == [path]
            and commented(parent)
        )
        if not (commented(path) or covered):
            uncommented.append(path)
    assert uncommented == []


def test_commented_examples_show_every_item_key() -> None:
    text = EXAMPLE.read_text()
    for path in COMMENTED_EXAMPLES:
        model = _model_of(Settings.model_fields[path.split(".")[0]].annotation)
        assert model is not None
        items = _model_of(model.model_fields[path.split(".")[1]].annotation)
        assert items is not None
        for key in items.model_fields:
            assert f"#     {key}:" in text or f"#   - {key}:" in text, f"{path}.{key}"


def test_detect_section_points_at_its_docs() -> None:
    text = EXAMPLE.read_text()
    for key, doc in DOCUMENTED_ELSEWHERE.items():
        assert f"see {doc}" in text
        assert f"\n{key}:" in text
