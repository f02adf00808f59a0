"""Where the reference specifications the tests check against live: they are not in the
repository (their licences and sizes differ from ours), so a test that needs one asks
`spec_dir` and skips, saying so, when it is not here."""

from __future__ import annotations

import os
from pathlib import Path


def spec_dir(name: str, probe: str) -> Path | None:
    """The folder `shared/specs/<name>` holding the file `probe`: under $LANTERNA_SPECS,
    else shared/specs beside the checkout or any folder above it (../shared/specs in the
    workplace), else the workplace's own; None when none of them has it."""
    env = os.environ.get("LANTERNA_SPECS")
    places = [Path(env)] if env else []
    places += [p / "shared" / "specs" for p in Path(__file__).resolve().parents]
    places.append(Path("/work/shared/specs"))  # the workplace's, for a clone made elsewhere
    for p in places:
        if (p / name / probe).is_file():
            return p / name
    return None


TALQ = spec_dir("talq", "talq-api-cms-2-7-1-online.json")
NO_TALQ = "the TALQ 2.7.1 OpenAPI files (../shared/specs/talq) are not here: set LANTERNA_SPECS"
