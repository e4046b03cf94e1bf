"""The comparison as text: the results table ``metaxfer run`` prints, and the report's one-paragraph summary."""

from __future__ import annotations

from metaxfer.report.schema import Comparison, PathResult

__all__ = ["format_table", "summary_text", "lead_is_clear"]


def lead_is_clear(winner: PathResult, runner_up: PathResult) -> bool:
    """Whether ``winner``'s 95% interval lies wholly above ``runner_up``'s (the two intervals do not overlap).

    Non-overlapping intervals are a conservative sign of a real difference: overlapping ones do not prove there is
    none.
    """
    return winner.accuracy.low > runner_up.accuracy.high


def _pct(p: PathResult) -> str:
    return f"{100 * p.accuracy.mean:.1f} ± {100 * p.accuracy.ci95:.1f}%"


def summary_text(comparison: Comparison) -> str:
    """One paragraph naming the best path and whether its lead over the runner-up is outside the 95% intervals.

    Args:
        comparison: The comparison.

    Returns:
        Plain text (the HTML template escapes it).
    """
    s = comparison.setting
    where = (f"{s.episodes} {s.ways}-way {s.shots}-shot target episodes ({s.source} → {s.target}, "
             f"{s.queries} queries per class)")
    ranked = comparison.ranked()
    best = ranked[0]
    if len(ranked) == 1:
        return f"Only one path ran: {best.name} ({best.family}) reached {_pct(best)} accuracy on {where}."
    second = ranked[1]
    tied = [p.name for p in ranked if p.accuracy.mean == best.accuracy.mean]
    if len(tied) > 1:
        return (f"{', '.join(tied[:-1])} and {tied[-1]} tie for first place of {len(ranked)} paths at {_pct(best)} "
                f"accuracy on {where}.")
    gap = 100 * (best.accuracy.mean - second.accuracy.mean)
    head = (f"{best.name} ({best.family}) is the best of {len(ranked)} paths with {_pct(best)} accuracy on {where}. "
            f"Its lead of {gap:.1f} points over the runner-up, {second.name} ({second.family}, {_pct(second)}), ")
    pair = next((p for p in comparison.paired if p.best == best.name and p.other == second.name), None)
    if pair is not None:
        verdict = ("excludes zero: on these episodes the lead is real" if pair.significant else
                   "includes zero: these episodes do not tell the two apart")
        return head + (f"is {100 * pair.difference:.1f} ± {100 * pair.ci95:.1f} points when the two are compared "
                       f"episode by episode (paired 95% interval), which {verdict}.")
    if lead_is_clear(best, second):
        return head + "is outside the 95% confidence intervals: the two intervals do not overlap."
    return head + ("is within the 95% confidence intervals: the two intervals overlap, so these episodes do not "
                   "tell the two apart.")


def format_table(comparison: Comparison) -> str:
    """The results table as plain text, best path first (what ``metaxfer run`` prints).

    Columns: rank, path, family, accuracy (mean ± 95% CI, %), episodes, train and evaluation seconds, then one
    column per extra metric any path reports.

    Args:
        comparison: The comparison.

    Returns:
        The table, lines joined with ``\\n`` and no trailing newline.
    """
    extra = sorted({k for p in comparison.paths for k in p.metrics})
    header = ["#", "path", "family", "accuracy %", "n", "train s", "eval s", *extra]
    right = {0, 3, 4, 5, 6, *range(7, 7 + len(extra))}
    body = [[str(i + 1), p.name, p.family, f"{100 * p.accuracy.mean:.1f} ± {100 * p.accuracy.ci95:.1f}",
             str(p.accuracy.n), f"{p.seconds.train:.1f}", f"{p.seconds.evaluate:.1f}",
             *(f"{p.metrics[k]:.4g}" if k in p.metrics else "-" for k in extra)]
            for i, p in enumerate(comparison.ranked())]
    widths = [max(len(row[j]) for row in [header, *body]) for j in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if j in right else c.ljust(w)
                         for j, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])
