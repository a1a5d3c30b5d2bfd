"""HTML pieces of the report and the comparison page: one self-contained file, no scripts.

Images are embedded as base64 PNG data URIs; the style sheet is inline; nothing is fetched, so
the page opens offline, from an e-mail attachment or a CI artifact alike.
"""

from __future__ import annotations

import base64
import html
import json
import math

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #263238; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 1.35em; }
header p { margin: 4px 0 0; color: #cfd8dc; font-size: 0.9em; }
nav { padding: 8px 28px; background: #eceff1; font-size: 0.88em; position: sticky; top: 0; }
nav a { margin-right: 12px; color: #1565c0; text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 6px 18px 14px; margin: 16px 0; }
h2 { font-size: 1.15em; border-bottom: 1px solid #eee; padding-bottom: 4px; }
h3 { font-size: 1em; margin: 12px 0 4px; }
table { border-collapse: collapse; font-size: 0.86em; margin: 6px 0; }
th, td { border: 1px solid #e0e0e0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 6px 10px 6px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.82em; color: #555; max-width: 640px; }
.row { display: flex; flex-wrap: wrap; gap: 10px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 10px; }
.grid figure { display: block; margin: 0; min-width: 0; }
.grid figure img { width: 100%; height: auto; }
.scroll { overflow-x: auto; max-width: 100%; }
section { min-width: 0; overflow-wrap: anywhere; }
.note { color: #666; font-size: 0.88em; }
code { background: #f3f3f3; padding: 0 3px; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{css}</style>
</head>
<body>
<header><h1>{title}</h1><p>{subtitle}</p></header>
<nav>{nav}</nav>
<main>
{sections}
</main>
</body>
</html>
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """Numbers with 4 significant digits, None as '-', containers as compact JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) and abs(value) < 1e5 else f"{value:.3e}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return str(value)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_html(png: bytes, *, alt: str, caption: str = "") -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(png)}" alt="{esc(alt)}">{cap}</figure>'


def kv_table(items: dict) -> str:
    """A two-column table of name -> value."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in items.items())
    return f"<div class='scroll'><table>{rows}</table></div>"


def table(rows: list[dict], columns: list[str], *, headers: dict | None = None) -> str:
    """rows x columns; numbers right-aligned."""
    headers = headers or {}
    head = "".join(f"<th>{esc(headers.get(c, c))}</th>" for c in columns)
    body = ""
    for r in rows:
        cells = ""
        for c in columns:
            v = r.get(c)
            cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cells += f"<td{cls}>{esc(fmt(v))}</td>"
        body += f"<tr>{cells}</tr>"
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{esc(section_id)}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


def page(*, title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """sections: [(id, title, body html)] -> the whole document."""
    nav = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t, _ in sections)
    body = "\n".join(section(i, t, b) for i, t, b in sections)
    return PAGE.format(title=esc(title), subtitle=esc(subtitle), css=CSS, nav=nav, sections=body)
