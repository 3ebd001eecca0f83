"""Where the service keeps leads, events, scores and their history: SQLite or PostgreSQL."""
