"""What one cleanup run did, kept up to date while it runs.

The deleting steps add to the same object as they go, so a run that fails halfway can
still report (and record) exactly what it had already deleted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass
class RunSummary:
    dry_run: bool = False
    # In a dry run the two "deleted" counts are what the run WOULD have deleted.
    records_deleted: int = 0
    keys_scanned: int = 0
    keys_deleted: int = 0
    duration_seconds: float = 0.0

    def to_json(self, status: str) -> str:
        """The one summary line the job prints on stdout."""
        fields = asdict(self)
        fields["duration_seconds"] = round(self.duration_seconds, 3)
        return json.dumps({"status": status, **fields}, sort_keys=True)
