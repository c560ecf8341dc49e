"""Cases: an audit's suspects and their verdicts, independent of any UI.

* :mod:`.case` - :class:`Case` and :class:`Suspect`: what the dashboard shows and ``audit`` prints;
* :mod:`.uploads` - uploaded answers, weights and zipped folders kept in the store under their hash;
* :mod:`.casefile` - cases saved in the store, listed, reopened from an audit record;
* :mod:`.scan` - many suspects against one audit, a JSON line each, resumable (in process or on Ray).
"""
from .case import Case, Suspect
from .casefile import case_report, recent_cases, reopen, run_case, save_case
from .scan import ScanRow, parse_suspect_lines, read_suspect_list, scan, scan_ray
from .uploads import store_answers, store_upload

__all__ = ["Case", "ScanRow", "Suspect", "case_report", "parse_suspect_lines", "read_suspect_list", "recent_cases",
           "reopen", "run_case", "save_case", "scan", "scan_ray", "store_answers", "store_upload"]
