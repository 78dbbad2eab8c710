"""serving: the FastAPI scoring service, its storage, auth and the qualification policy."""
