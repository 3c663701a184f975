"""The read side: projections built only from events, answering queries (also as of the past)."""
