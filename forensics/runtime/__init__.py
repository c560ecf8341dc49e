"""What every layer runs on, and no part of the method: the environment's settings, the artifact store, progress
events and their views, background jobs, the lock around torch's random state, torchrun workers and Ray tasks.

* :mod:`.settings` - every environment variable, read in one place;
* :mod:`.store` - the one artifact store (entries keyed by config and input fingerprints, written once);
* :mod:`.progress` - progress events, and what a viewer makes of them (stages, fractions, time left);
* :mod:`.jobs` - long work in a background thread that any viewer can poll;
* :mod:`.rng` - the lock that keeps seeded runs reproducible when several share a process;
* :mod:`.distributed` - training under torchrun (each worker's share of a batch, the group);
* :mod:`.fanout` - one Ray task per item (scans, the zoo), results as they finish;
* :mod:`.safe_text` - one escaping rule per surface (HTML, plotly, markdown, terminal) for names from a dispute.
"""
from .jobs import Job, get_job, start_job
from .progress import Progress, StagePlan, StageProgress, StageView, WorkProgress, emit, stage_views
from .rng import RNG_LOCK
from .settings import Settings
from .store import ArtifactStore, Entry, artifact_key, fingerprint_array

__all__ = ["RNG_LOCK", "ArtifactStore", "Entry", "Job", "Progress", "Settings", "StagePlan", "StageProgress",
           "StageView", "WorkProgress", "artifact_key", "emit", "fingerprint_array", "get_job", "stage_views",
           "start_job"]
