"""docs/api.md documents every route the daemon serves under /api/v1, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from cdnops.api.v1 import ROUTES

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    found = re.findall(r"^`(GET|POST|DELETE|PUT|PATCH) (/[^`\s]*)`", DOC.read_text(), re.M)
    documented = {(method, path.removeprefix("/api/v1")) for method, path in found}
    served = {(r.method, r.path) for r in ROUTES}
    assert served == documented
