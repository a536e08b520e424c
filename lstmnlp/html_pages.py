"""Self-contained HTML pages (no network, no external scripts) for `lstmnlp inspect`."""

from __future__ import annotations

import html
import json
from pathlib import Path

from lstmnlp.checkpoint import atomic_write_text
from lstmnlp.inspection import UnitReport

STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:80em}
.row{font-family:monospace;white-space:pre-wrap;line-height:1.5;margin:.4em 0 1.2em;border-left:3px solid #ccc;padding-left:.6em}
.row span{padding:0 0}h3{margin:.2em 0;font-size:1em}table{border-collapse:collapse}td,th{padding:.2em .6em;border:1px solid #ddd}"""

UNIT_SCRIPT = """
const data = JSON.parse(document.getElementById('data').textContent);
function color(v){ v=Math.max(-1,Math.min(1,v)); const a=Math.abs(v);
  return v>=0 ? `rgba(220,60,40,${a})` : `rgba(40,90,220,${a})`; }
function render(){
  const quantity=document.getElementById('quantity').value;
  const chosen=[...document.getElementById('units').selectedOptions].map(o=>+o.value);
  const box=document.getElementById('rows'); box.innerHTML='';
  for(const unit of chosen){
    const values=data.units[unit][quantity];
    const title=document.createElement('h3'); title.textContent=`unit ${unit} — ${quantity}`; box.appendChild(title);
    const row=document.createElement('div'); row.className='row';
    data.tokens.forEach((token,i)=>{ const span=document.createElement('span');
      span.textContent=token; span.style.background=color(values[i]);
      span.title=`${quantity} ${values[i].toFixed(3)}`; row.appendChild(span); });
    box.appendChild(row);
  }
}
document.getElementById('quantity').onchange=render;
document.getElementById('units').onchange=render;
render();
"""


def unit_page(report: UnitReport, layer: int, units: list[int], out: Path, title: str) -> None:
    """Text colored by each chosen unit's activation (red positive, blue negative), one unit per
    row; a selector picks the units and the quantity (tanh of the cell, hidden, gates as 2g-1)."""
    trace = report.traces[layer]
    quantities = {"cell (tanh)": trace.cell.tanh(), "hidden": trace.hidden,
                  "input gate": trace.input_gate * 2 - 1, "forget gate": trace.forget_gate * 2 - 1,
                  "output gate": trace.output_gate * 2 - 1}
    data = {"tokens": report.tokens,
            "units": {str(unit): {name: [round(float(v), 3) for v in values[:, unit]]
                                  for name, values in quantities.items()} for unit in units}}
    labels = {unit: [] for unit in units}
    for feature, pairs in report.correlations.items():
        for unit, r in pairs:
            if unit in labels:
                labels[unit].append(f"{feature} r={r:+.2f}")
    options = "".join(f'<option value="{unit}"{" selected" if i < 4 else ""}>unit {unit}'
                      f'{" — " + html.escape(", ".join(labels[unit])) if labels[unit] else ""}</option>'
                      for i, unit in enumerate(units))
    table = "".join(f"<tr><td>{html.escape(feature)}</td><td>"
                    + ", ".join(f"{unit} (r={r:+.2f})" for unit, r in pairs) + "</td></tr>"
                    for feature, pairs in report.correlations.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>
<p>Layer {layer + 1}: {len(report.tokens):,} tokens. Red: positive, blue: negative. Hover a token for its value.</p>
<table><tr><th>feature</th><th>units whose cell state correlates most (Pearson r)</th></tr>{table}</table>
<p><label>quantity <select id="quantity">{"".join(f"<option>{name}</option>" for name in quantities)}</select></label>
<label> units (ctrl-click for several) <select id="units" multiple size="6">{options}</select></label></p>
<div id="rows"></div>
<script type="application/json" id="data">{html.escape(json.dumps(data), quote=False)}</script>
<script>{UNIT_SCRIPT}</script></body></html>
"""
    atomic_write_text(out, page)


def token_weights_page(pieces: list[str], weights: list[float], heading: str, out: Path) -> None:
    """One text with each piece shaded by its weight (largest = full color)."""
    top = max(weights) if weights else 1.0
    spans = "".join(f'<span style="background:rgba(220,60,40,{w / top if top else 0:.3f})" '
                    f'title="{w:.4f}">{html.escape(piece.replace(chr(9601), " "))}</span>'
                    for piece, w in zip(pieces, weights))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(heading)}</title>
<style>{STYLE}</style></head><body><h1>{html.escape(heading)}</h1><div class="row">{spans}</div></body></html>
"""
    atomic_write_text(out, page)
