"""The self-contained HTML page: CSS, the plotly.js library inline (no CDN, works offline), the
summary tables and one section per figure."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from matsearch.report import tables

CSS = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
.table-wrap { overflow-x: auto; max-width: 100%; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; text-align: right; }
th { background: #f2f2f2; white-space: normal; min-width: 4em; max-width: 12em; }
td { white-space: nowrap; }
td:last-child { white-space: normal; min-width: 14em; }
section.figure { margin: 1.5em 0; overflow-x: auto; }
.note { color: #a33; }
"""


@dataclass
class FigureSection:
    """One figure of the report: the plotly figure, or a note saying why it was not drawn."""

    name: str
    title: str
    figure: go.Figure | None = None
    note: str | None = None

    def html(self) -> str:
        if self.figure is not None:
            body = self.figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"figure-{self.name}",
                config={"displaylogo": False, "responsive": True},
            )
        else:
            body = f'<p class="note">Not drawn: {html.escape(self.note or "")}.</p>'
        return (
            f'<section class="figure" id="section-{self.name}" data-figure="{self.name}">'
            f"<h2>{html.escape(self.title)}</h2>{body}</section>"
        )


def render(summary: dict[str, Any], sections: Sequence[FigureSection], facts: str) -> str:
    """The whole page. `facts` is an escaped HTML paragraph about the run."""
    name = html.escape(str(summary["name"]))
    csp = ""
    if summary["csp"] is not None:
        csp = (
            f"<h2>Crystal structure prediction</h2><p>{tables.csp_sentence(summary['csp'])}</p>"
            f"{tables.csp_table(summary['csp'])}"
        )
    dft = ""
    if summary["dft"]["results"]:
        dft = f"<h2>DFT results</h2><p>{tables.dft_sentence(summary['dft'])}</p>{tables.dft_table(summary)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>matsearch report: {name}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style>
<script>{get_plotlyjs()}</script>
</head><body>
<h1>matsearch report: {name}</h1>
<p>{facts}</p>
{csp}
<h2>Best {len(summary["candidates"])} relaxed candidates (lowest e_above_hull first)</h2>
{tables.candidates_table(summary)}
{dft}
<h2>Generations (best value this generation and best so far)</h2>
{tables.generations_table(summary)}
<h2>Yield per proposer and operator</h2>
{tables.yields_table(summary["operators"], "proposer/operator")}
{"".join(section.html() for section in sections)}
</body></html>
"""
