"""The ranking chart: one bar per ranked subject, coloured by its code, as a PNG for a phone.

matplotlib draws it (headless, the Agg renderer) in Noto Sans SC, which the project installs as a
package (``pylopdf-fonts-zh-cn``, SIL Open Font License), so Chinese names render on any
machine without system fonts. DejaVu Sans (shipped with matplotlib) is the fallback for any
glyph the CJK font lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import pickle
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pylopdf_fonts_zh_cn
from fontTools.ttLib import TTFont

from bot.services.ranking import Change, ChangeKind, Code, Standings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
COLOURS: dict[Code, str] = {Code.green: "#2E9E44", Code.yellow: "#F2B600", Code.red: "#D64541"}
WIDTH_IN, DPI = 7.2, 150  # 1080 px wide: a phone screen's width
BAR_IN, MARGIN_IN = 0.34, 1.5
HIGHLIGHT = "#1F4E9E"  # the asking group's own subject
_lock = threading.Lock()  # matplotlib's font cache is shared state
CHART_TIMEOUT_S = 60.0  # a chart of 100 subjects takes about a second on a busy machine


def font_path() -> Path:
    return Path(pylopdf_fonts_zh_cn.sans_path())


@cache
def _use_agg() -> None:
    """matplotlib is imported on the first chart, not with the bot: it holds ~60 MB resident
    (numpy with it), which a bot that has not drawn a chart yet need not carry."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # never look for a display
    import matplotlib

    matplotlib.use("Agg")


@cache
def font_family() -> str:
    """Register the CJK font with matplotlib once; its family name."""
    _use_agg()
    from matplotlib import font_manager

    path = font_path()
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


@cache
def _codepoints() -> frozenset[int]:
    with TTFont(font_path(), lazy=True) as font:
        return frozenset(font.getBestCmap())


def missing_glyphs(text: str) -> set[str]:
    """The characters of ``text`` the CJK font cannot draw (whitespace aside)."""
    covered = _codepoints()
    return {ch for ch in text if not ch.isspace() and ord(ch) not in covered}


@dataclass(frozen=True)
class ChartText:
    """The words on the chart, in the reader's language (the caller translates)."""

    title: str
    axis: str
    legend: Mapping[str, str]  # code value → label
    empty: str
    marks: Mapping[str, str] = field(default_factory=dict)  # change kind → e.g. "新"


def change_mark(change: Change | None, new_mark: str = "new") -> str:
    match change:
        case None:
            return ""
        case Change(kind=ChangeKind.up, places=n):
            return f"↑{n}"
        case Change(kind=ChangeKind.down, places=n):
            return f"↓{n}"
        case Change(kind=ChangeKind.new):
            return new_mark
        case _:
            return "–"


def chart_labels(standings: Standings, changes: Mapping[int, Change], text: ChartText) -> list[str]:
    """Every string the chart draws (what the glyph test checks)."""
    if not standings.ranked:
        return [text.title, text.empty]
    labels = [text.title, text.axis, *text.legend.values()]
    for row in standings.ranked:
        labels.append(f"{row.rank}  {row.name}")
        mark = change_mark(changes.get(row.subject_id), text.marks.get("new", "new"))
        labels.append(f"{row.score:.1f} {mark}".strip())
    return labels


def render_ranking_chart(
    standings: Standings,
    changes: Mapping[int, Change],
    text: ChartText,
    *,
    highlight: int | None = None,
) -> bytes:
    """The chart as PNG bytes; ``highlight`` (a subject id) is outlined in blue."""
    rows = standings.ranked
    n = len(rows)
    missing = set().union(
        *(missing_glyphs(label) for label in chart_labels(standings, changes, text))
    )
    if missing:  # a rare character in a name: DejaVu Sans may still have it
        log.warning(
            "the CJK font lacks %s; the chart falls back for them", "".join(sorted(missing))
        )
    with _lock:
        family = font_family()
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        with matplotlib.rc_context(
            {"font.family": [family, "DejaVu Sans"], "font.size": 11, "axes.unicode_minus": False}
        ):
            height = MARGIN_IN + BAR_IN * max(n, 3)
            fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
            ax = fig.add_subplot()
            if not rows:
                ax.axis("off")
                ax.text(0.5, 0.5, text.empty, ha="center", va="center", fontsize=14)
                fig.suptitle(text.title, fontsize=14)
                return _png(fig)
            positions = list(range(n))
            scores = [row.score or 0.0 for row in rows]
            colours = [COLOURS[row.code or Code.yellow] for row in rows]
            edges = [HIGHLIGHT if row.subject_id == highlight else "none" for row in rows]
            ax.barh(positions, scores, color=colours, edgecolor=edges, linewidth=2, height=0.72)
            ax.set_yticks(positions, [f"{row.rank}  {row.name}" for row in rows])
            for label, row in zip(ax.get_yticklabels(), rows, strict=True):
                if row.subject_id == highlight:  # the font has no bold face: colour instead
                    label.set_color(HIGHLIGHT)
            ax.invert_yaxis()  # rank 1 at the top
            ax.set_xlim(0, 118)
            ax.set_xticks([0, 20, 40, 60, 80, 100])
            ax.set_xlabel(text.axis)
            ax.grid(axis="x", color="#DDDDDD", linewidth=0.8)
            ax.set_axisbelow(True)
            ax.spines[["top", "right"]].set_visible(False)
            ax.margins(y=0.01)
            new_mark = text.marks.get("new", "new")
            for position, row in zip(positions, rows, strict=True):
                mark = change_mark(changes.get(row.subject_id), new_mark)
                ax.text(
                    (row.score or 0.0) + 1.2,
                    position,
                    f"{row.score:.1f} {mark}".strip(),
                    va="center",
                    fontsize=10,
                    color=HIGHLIGHT if row.subject_id == highlight else "#222222",
                )
            fig.suptitle(text.title, fontsize=14)
            handles = [
                Patch(color=COLOURS[code], label=text.legend.get(code.value, code.value))
                for code in Code
            ]
            fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
            return _png(fig)


async def draw_ranking_chart(
    standings: Standings,
    changes: Mapping[int, Change],
    text: ChartText,
    *,
    highlight: int | None = None,
) -> bytes:
    """``render_ranking_chart`` in a short-lived child process, as the bot draws every chart.

    matplotlib, numpy and the CJK font stay resident once loaded (≈ 60 MiB, a third of the
    bot's memory), and drawing holds the GIL for up to a second, stalling the event loop. In a
    child (``python -m bot.services.chart_child``, which imports only this module) neither
    touches the bot; the cost is the child's start and matplotlib's import, under a second a
    chart. The job goes in by pickle (our own values to our own child) and the PNG comes out.
    """
    job = pickle.dumps((standings, dict(changes), text, highlight))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.services.chart_child",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        png, errors = await asyncio.wait_for(child.communicate(job), CHART_TIMEOUT_S)
    except BaseException:  # timed out or cancelled: the child must not outlive the chart
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise
    if child.returncode != 0 or not png.startswith(b"\x89PNG"):
        tail = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ChartError(f"the chart's process failed ({child.returncode}): {tail[0]}")
    return png


class ChartError(RuntimeError):
    """The child drawing a chart failed; its last line of error output says why."""


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No metadata: the same ranking gives the same bytes (and the same media-store address).
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
