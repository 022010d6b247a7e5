"""Events: the Segment-compatible tracking API, the durable event log and its processing loop."""
