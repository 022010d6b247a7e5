"""Segments: a JSON rule language compiled to SQL, dynamic and static membership, real-time entry/exit."""
