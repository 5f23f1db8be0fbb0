"""YAML loading: marks of keys, values and items; duplicate keys; syntax and read errors."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import yaml

from cdnops.config.yamlload import (
    MarkingLoader,
    PyMarkingLoader,
    format_loc,
    load_yaml,
    parse_yaml,
    paused_gc,
)
from cdnops.errors import ConfigError, Issue

TEXT = """\
poll:
  interval_s: 5
  metrics:
    - cpu_util
    - mem_util
appliances:
  - id: a
    url: http://x
"""


def _only_issue(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "f.yaml")
    assert len(info.value.issues) == 1
    return str(info.value.issues[0])


def test_the_c_parser_is_used() -> None:
    assert MarkingLoader.__mro__[2] is yaml.CSafeLoader


@pytest.mark.parametrize("loader", [MarkingLoader, PyMarkingLoader])
def test_marks_of_values_keys_and_items(loader: type[PyMarkingLoader]) -> None:
    doc = parse_yaml(TEXT, "f.yaml", loader)
    assert doc.data["poll"]["metrics"] == ["cpu_util", "mem_util"]
    assert doc.issue(("poll", "interval_s"), "m") == Issue("f.yaml", 2, 15, "poll.interval_s", "m")
    assert doc.issue(("poll", "interval_s"), "m", key=True).col == 3
    assert doc.issue(("poll", "metrics", 1), "m") == Issue("f.yaml", 5, 7, "poll.metrics[1]", "m")
    assert doc.issue(("appliances", 0, "url"), "m") == Issue(
        "f.yaml", 8, 10, "appliances[0].url", "m"
    )


def test_a_place_that_does_not_exist_points_at_the_nearest_enclosing_node() -> None:
    doc = parse_yaml(TEXT, "f.yaml")
    assert doc.issue(("appliances", 0, "site"), "m") == Issue(
        "f.yaml", 7, 5, "appliances[0].site", "m"
    )
    assert doc.issue(("appliances", 7), "m").line == 7  # the list itself
    assert doc.issue(("nope",), "m").line == 1


def test_format_loc() -> None:
    assert format_loc(("appliances", 3, "labels", "rack")) == "appliances[3].labels.rack"
    assert format_loc(()) == ""


@pytest.mark.parametrize("loader", [MarkingLoader, PyMarkingLoader])
def test_duplicate_key_names_both_lines(loader: type[PyMarkingLoader]) -> None:
    doc = parse_yaml("poll:\n  interval_s: 5\n  timeout_s: 1\n  interval_s: 6\n", "f.yaml", loader)
    assert doc.data["poll"]["interval_s"] == 6
    assert [str(i) for i in doc.issues] == [
        'f.yaml:4:3: poll.interval_s: duplicate key "interval_s": first at line 2, '
        "again at line 4 (only one may be given)"
    ]


def test_duplicate_key_inside_a_list_item_has_its_path() -> None:
    doc = parse_yaml("appliances:\n  - id: a\n    id: b\n", "f.yaml")
    assert [(i.line, i.col, i.path) for i in doc.issues] == [(3, 5, "appliances[0].id")]


def test_merge_keys_are_not_duplicates() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n", "f.yaml")
    assert doc.issues == ()
    assert doc.data["other"] == {"x": 3, "y": 2}
    assert doc.issue(("other", "x"), "m").line == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: [1, 2\nb: 3\n",
            "f.yaml:2:2: invalid YAML: did not find expected ',' or ']' "
            "(while parsing a flow sequence at line 1)",
        ),
        (
            "a:\n  b: 1\n c: 2\n",
            "f.yaml:3:2: invalid YAML: did not find expected key "
            "(while parsing a block mapping at line 1)",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "f.yaml:2:1: invalid YAML: expected a single document in the stream, "
            "but found another document",
        ),
        (
            "a: !!python/object/apply:os.system [echo]\n",
            "f.yaml:1:4: invalid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
    ],
)
def test_syntax_error_is_an_issue_at_its_place(text: str, expected: str) -> None:
    assert _only_issue(text) == expected


def test_empty_file_is_none(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    doc = load_yaml(path)
    assert doc.data is None
    assert doc.issue(("x",), "m") == Issue(str(path), 0, 0, "x", "m")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}: cannot read file: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read file: Is a directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"site: s\xe9a01\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}: not UTF-8 text (invalid byte at offset 7)"


MIXED = """\
str: text
quoted: "10"
tagged: !!str 10
int: 10
hex: 0x1f
float: 1.5e3
inf: .inf
bool: yes
null_value: ~
date: 2026-12-01
stamp: 2026-12-01T03:00:00Z
list: [1, two, {three: 3}]
nested: {a: {b: [c]}}
set: !!set {x, y}
pairs: !!omap [{a: 1}, {b: 2}]
base: &base {x: 1, y: [1, 2]}
alias: *base
merged:
  <<: *base
  x: 2
1: int key
? [1, 2]
: never
"""


@pytest.mark.parametrize("loader", [MarkingLoader, PyMarkingLoader])
def test_data_is_what_the_safe_loader_builds(loader: type[PyMarkingLoader]) -> None:
    text = MIXED.replace("? [1, 2]\n: never\n", "")
    doc = parse_yaml(text, "f.yaml", loader)
    assert doc.data == yaml.safe_load(text)
    assert doc.data["alias"] is doc.data["base"]  # aliases stay shared
    assert doc.issues == ()


def test_a_list_as_a_key_is_an_issue() -> None:
    assert _only_issue(MIXED) == (
        "f.yaml:22:3: invalid YAML: found a list or mapping as a key "
        "(while constructing a mapping at line 1)"
    )


def test_recursive_alias_is_built() -> None:
    doc = parse_yaml("a: &x [1, *x]\n", "f.yaml")
    assert doc.data["a"][1] is doc.data["a"]


def test_syntax_error_place_with_the_python_parser() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: [1, 2\nb: 3\n", "f.yaml", PyMarkingLoader)
    assert str(info.value) == (
        "f.yaml:2:2: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 1)"
    )


def test_paused_gc_restores_the_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not end the outer one
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # left disabled, as it was
    finally:
        gc.enable()
