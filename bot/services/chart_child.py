"""The child process that draws one ranking chart (see ``charts.draw_ranking_chart``).

Reads the pickled ``(standings, changes, text, highlight)`` on stdin, writes the PNG on stdout.
"""

from __future__ import annotations

import pickle
import sys

from bot.services.charts import render_ranking_chart


def main() -> None:
    standings, changes, text, highlight = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(render_ranking_chart(standings, changes, text, highlight=highlight))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
