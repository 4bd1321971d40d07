"""Findings and the validation report: what failed, where, and why; as text or JSON.

A finding has a level (``error`` fails the run, ``warning`` does not, ``not-checked`` says what
could not be checked, e.g. an unavailable schema), the check that made it, the file or URL it is
about and a one-line message. Findings that share a ``key`` (the same missing schema in 10,000
items) are folded into one, with a count.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

ERROR, WARNING, NOT_CHECKED = "error", "warning", "not-checked"
# Control characters (newlines, ANSI escapes) from a hostile catalog's hrefs and ids, shown as
# \xNN in the text report: one finding stays one line and cannot paint the terminal or fake a
# "PASS" line. (The JSON report escapes them anyway.)
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}


def printable(s: str) -> str:
    return s.translate(_CONTROL)


LEVELS = (ERROR, WARNING, NOT_CHECKED)
CHECKS = ("read", "schema", "links", "rules", "assets")


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    where: str  # file path or URL
    message: str
    key: str | None = None  # same key = same problem, folded into one finding
    count: int = 1

    def line(self) -> str:
        more = f" (and {self.count - 1:,} more)" if self.count > 1 else ""
        return printable(f"{self.level.upper():<11} {self.check:<7} {self.where}: {self.message}{more}")

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("key")
        return d


@dataclass
class Report:
    target: str
    findings: list[Finding] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # objects by type, assets, links checked
    checks: dict[str, bool] = field(default_factory=dict)  # which checks ran
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, f: Finding) -> None:
        self.findings.append(f)

    def extend(self, fs: Iterable[Finding]) -> None:
        self.findings.extend(fs)

    def folded(self) -> list[Finding]:
        """Findings in a stable order, those with a shared key folded into one with a count."""
        keyed: dict[tuple, list[Finding]] = defaultdict(list)
        plain: list[Finding] = []
        for f in self.findings:
            (keyed[(f.level, f.check, f.key)] if f.key else plain).append(f)
        out = plain + [
            Finding(
                fs[0].level, fs[0].check, min(f.where for f in fs), fs[0].message, fs[0].key, sum(f.count for f in fs)
            )
            for fs in keyed.values()
        ]
        rank = {lvl: i for i, lvl in enumerate(LEVELS)}
        return sorted(out, key=lambda f: (rank.get(f.level, 9), f.check, f.where, f.message))

    def number(self, level: str) -> int:
        return sum(f.count for f in self.folded() if f.level == level)

    @property
    def ok(self) -> bool:
        return not any(f.level == ERROR for f in self.findings)

    def exit_code(self, strict: bool = False) -> int:
        if not self.ok:
            return 1
        if strict and any(f.level == NOT_CHECKED for f in self.findings):
            return 1
        return 0

    def summary(self) -> dict[str, Any]:
        folded = self.folded()
        return {
            "ok": self.ok,
            "errors": sum(f.count for f in folded if f.level == ERROR),
            "warnings": sum(f.count for f in folded if f.level == WARNING),
            "not_checked": sum(f.count for f in folded if f.level == NOT_CHECKED),
            "counts": dict(sorted(self.counts.items())),
            "checks": self.checks,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def to_json(self) -> dict:
        return {"target": self.target, **self.summary(), "findings": [f.to_json() for f in self.folded()]}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def text(self, max_per_check: int = 20) -> str:
        """Human report: findings grouped by level and check (at most ``max_per_check`` lines
        each; 0 = all), then a summary line."""
        lines: list[str] = []
        groups: dict[tuple[str, str], list[Finding]] = defaultdict(list)
        for f in self.folded():
            groups[(f.level, f.check)].append(f)
        for (level, check), fs in groups.items():
            shown = fs if max_per_check <= 0 else fs[:max_per_check]
            lines += [f.line() for f in shown]
            if len(shown) < len(fs):
                lines.append(
                    f"{'':<11} {check:<7} ... and {len(fs) - len(shown):,} more {level} findings (--max-findings 0 or "
                    "--format json shows all)"
                )
        s = self.summary()
        c = self.counts
        objects = ", ".join(f"{c[k]:,} {k}" for k in ("catalogs", "collections", "items") if c.get(k))
        ran = ", ".join(k for k, v in self.checks.items() if v) or "none"
        off = ", ".join(k for k, v in self.checks.items() if not v)
        verdict = "PASS" if self.ok else "FAIL"
        lines.append(
            f"{verdict} {self.target}: {objects or 'no STAC objects'}"
            + (f", {c['asset files']:,} asset files" if c.get("asset files") else "")
            + f"; {s['errors']:,} errors, {s['warnings']:,} warnings, {s['not_checked']:,} not checked"
            + f"; checks: {ran}"
            + (f" (off: {off})" if off else "")
            + f"; {sum(self.seconds.values()):.1f} s"
        )
        return "\n".join(lines)
