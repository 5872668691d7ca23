"""What ``pygan.accelerate`` did: one row per module or method, printed as a table."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Replacement:
    """One row: ``path`` (module path, ``path.method()`` for methods), what it ``was``, and
    either what it became (``now``) or why it was left alone (``reason``)."""

    path: str
    was: str
    now: str | None = None
    reason: str | None = None

    @property
    def replaced(self) -> bool:
        return self.now is not None


class AccelerateReport:
    """The result of :func:`pygan.accelerate`: ``replaced`` and ``left_alone`` rows; ``str()``
    gives the table."""

    def __init__(self, rows: list[Replacement], *, dry_run: bool, verified: bool) -> None:
        self.rows = sorted(rows, key=lambda r: (not r.replaced, _natural(r.path)))
        self.dry_run = dry_run
        self.verified = verified

    @property
    def replaced(self) -> list[Replacement]:
        return [r for r in self.rows if r.replaced]

    @property
    def left_alone(self) -> list[Replacement]:
        return [r for r in self.rows if not r.replaced]

    def __len__(self) -> int:
        return len(self.replaced)

    def __getitem__(self, path: str) -> Replacement:
        for row in self.rows:
            if row.path == path:
                return row
        raise KeyError(f"no row for {path!r}; rows: {[r.path for r in self.rows]}")

    def __contains__(self, path: str) -> bool:
        return any(r.path == path for r in self.rows)

    def __str__(self) -> str:
        verb = "would replace" if self.dry_run else "replaced"
        check = "verified on probe inputs" if self.verified else "not verified (verify=False)"
        head = (f"pygan.accelerate: {verb} {len(self.replaced)}, left {len(self.left_alone)} "
                f"alone; {check}")
        table = [("module", "was", "now" if not self.dry_run else "would be")]
        table += [(r.path or "(root)", r.was, r.now if r.replaced else f"left alone: {r.reason}")
                  for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(2)]
        lines = [head]
        for i, (path, was, now) in enumerate(table):
            lines.append(f"  {path:<{widths[0]}}  {was:<{widths[1]}}  {now}")
            if i == 0:
                lines.append(f"  {'-' * widths[0]}  {'-' * widths[1]}  {'-' * max(8, len(now))}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"AccelerateReport(replaced={len(self.replaced)}, "
                f"left_alone={len(self.left_alone)}, dry_run={self.dry_run})")


def _natural(path: str) -> tuple:
    """Sort key keeping ``blocks.10`` after ``blocks.9``."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split("."))
