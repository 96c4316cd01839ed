"""The feature store: sharded, compressed, ragged beat-aligned features.

``extract`` writes it (in parallel, resumably, one writer at a time:
:class:`StoreLock`), ``FeatureStore`` reads it, ``check_store`` verifies and
repairs it (``beatdbn check``).
"""

from beatdbn.store.check import CheckReport, check_store
from beatdbn.store.lock import StoreLock
from beatdbn.store.reader import FeatureStore, TrackRecord

__all__ = ["FeatureStore", "TrackRecord", "StoreLock", "check_store", "CheckReport"]
