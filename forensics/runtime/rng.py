"""The lock around torch's global random state.

Training and the meta-classifier seed torch's global RNG (dropout, initialisation).  Two audits in
one process (two dashboard tabs, a scan over suspects) would interleave their draws; holding this
lock while a seeded run draws keeps every run reproducible bit for bit.
"""
from __future__ import annotations

import threading

RNG_LOCK = threading.RLock()
