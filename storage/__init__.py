"""SQLAlchemy schema of the catalog and every query on it."""
