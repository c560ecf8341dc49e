"""What the dashboard's pages share (not pages themselves): session state (:mod:`.state`), the page
registry (:mod:`.nav`) and small widgets (:mod:`.widgets`).  The core (:mod:`forensics`) knows nothing of
Streamlit; the pages in ``pages/`` stay thin and call the core through these helpers."""
