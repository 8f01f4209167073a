"""The explorer page (gc.explore): one HTML document filled with the data graphc.explore.page_data
gathers and Graphviz's SVG of each stage, its styles (explore_page.css) and script
(explore_page.js) inline."""
from __future__ import annotations

import html
import os

from .explore import data_json

_HERE = os.path.dirname(os.path.abspath(__file__))


def _asset(name: str) -> str:
    with open(os.path.join(_HERE, name), encoding="utf-8") as f:
        return f.read()


def render_page(data: dict) -> str:
    """The whole page for page_data's result."""
    stages = []
    for i, st in enumerate(data["stages"]):
        inner = st["svg"] if st["svg"] else (
            '<pre class="dot">Graphviz\'s dot was not found: the graph as DOT text.\n\n' + html.escape(st["dot"] or "")
            + "</pre>")
        stages.append(f'<div class="stage" id="stage-{i}" data-stage="{html.escape(st["name"])}" '
                      f'title="{html.escape(st["title"])}">{inner}</div>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>graphc explorer: {html.escape(data["title"])}</title>
<style>{_asset("explore_page.css")}</style></head>
<body>
<header><h1>graphc explorer: {html.escape(data["title"])}</h1><div id="summary"></div></header>
<div id="errors"></div>
<div id="bar"><span id="tabs"></span><button id="fit" title="fit the drawing to the window">fit</button>
<input id="search" placeholder="find a node by name or op (Enter: next)"><span id="hits"></span>
<span class="legend">kernel time share <i></i></span></div>
<main><div id="canvas">{"".join(stages)}</div>
<aside id="panel"><p>Click a node or a kernel (a cluster) for its details. Mouse wheel: zoom; drag: pan.</p>
</aside></main>
<script type="application/json" id="graph-data">{data_json(data)}</script>
<script>{_asset("explore_page.js")}</script>
</body></html>
"""
