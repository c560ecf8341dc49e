"""The audit report: one record (:mod:`.record`, the JSON audit record, written and read), its plain-words summary
(:mod:`.summary`), rendered as self-contained HTML (:mod:`.html`) and as PDF (:mod:`.pdf`), with the plotly figures
of an audit (:mod:`.figures`, :mod:`.verdict_figures`, :mod:`.gallery`; the house style in :mod:`.style`) and the
one-sentence takeaway of each (:mod:`.takeaways`).  The figure modules load plotly when they are imported, so this
package's own imports stay light.
"""
from .html import audit_figures, audit_takeaways, render_html
from .pdf import PdfRenderError, find_browser, render_pdf
from .record import CASE_FIELDS, RECORD_FORMAT, build_report, library_versions, read_record
from .summary import executive_summary, meaning

__all__ = ["CASE_FIELDS", "RECORD_FORMAT", "PdfRenderError", "audit_figures", "audit_takeaways", "build_report",
           "executive_summary", "find_browser", "library_versions", "meaning", "read_record", "render_html",
           "render_pdf"]
