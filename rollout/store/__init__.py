"""The store: engines, transactions and retries, the one door to the database, the dialect, the lock."""
