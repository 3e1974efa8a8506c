"""Results: one schema, the environment beside each record, an append-only store."""
