"""A tiny two-target document builder: one self-contained HTML file and a Markdown twin.

HTML embeds every image as a base64 PNG (``data:image/png;base64,...``) and carries its
own CSS, so ``report.html`` can be mailed or archived as a single file. Markdown links
the same images, written once into ``figures/`` next to it.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
figure { display: inline-block; margin: .5em; vertical-align: top; text-align: center; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; max-width: 520px; }
p.note { color: #555; font-size: 0.9em; }
"""


def png_bytes(image: np.ndarray | bytes | Path) -> bytes:
    """PNG bytes of an RGB/gray uint8 array, of a PNG file, or PNG bytes as they are."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, Path):
        return image.read_bytes()
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:60] or "figure"


class ReportWriter:
    """Accumulates headings, text, tables and figures; writes ``.html`` and ``.md``."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._html: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        self._md: list[str] = [f"# {title}", ""]
        self._figures: dict[str, bytes] = {}

    def heading(self, text: str, level: int = 2) -> None:
        self._html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self._md += [f"{'#' * level} {text}", ""]

    def paragraph(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self._html.append(f"<p{cls}>{html.escape(text)}</p>")
        self._md += [f"*{text}*" if note else text, ""]

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        self._html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

        def cell(c: object) -> str:
            return str(c).replace("|", "\\|")

        self._md.append("| " + " | ".join(cell(h) for h in header) + " |")
        self._md.append("|" + "|".join("---" for _ in header) + "|")
        self._md += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
        self._md.append("")

    def figure(
        self, image: np.ndarray | bytes | Path, caption: str, width: int | None = None
    ) -> None:
        """Add an image (array, PNG bytes or PNG file) with a caption."""
        data = png_bytes(image)
        name = _slug(caption)
        base, i = name, 1
        while name in self._figures:
            i += 1
            name = f"{base}_{i}"
        self._figures[name] = data
        b64 = base64.b64encode(data).decode("ascii")
        style = f' style="width:{width}px"' if width else ""
        self._html.append(
            f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(caption)}"{style}>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self._md += [f"![{caption}](figures/{name}.png)", "", f"*{caption}*", ""]

    def write(self, out: str | Path) -> tuple[Path, Path]:
        """Write ``out/report.html``, ``out/report.md`` and ``out/figures/*.png``."""
        out = Path(out)
        figs = out / "figures"
        figs.mkdir(parents=True, exist_ok=True)
        for name, data in self._figures.items():
            (figs / f"{name}.png").write_bytes(data)
        page = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(self._html)
            + "\n</body></html>\n"
        )
        html_path, md_path = out / "report.html", out / "report.md"
        html_path.write_text(page, encoding="utf-8")
        md_path.write_text("\n".join(self._md) + "\n", encoding="utf-8")
        return html_path, md_path
