"""Assertions shared by the robustness tests (tests/robust/)."""

from __future__ import annotations


def one_line_error(rc: int, err: str, *needles: str) -> str:
    """Exit 2 with exactly one ``gradsight: error:`` line on stderr containing ``needles``."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("gradsight: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
