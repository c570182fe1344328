"""The engine: selection, batch changes, the migration, the loop, the ledger, the domain words."""
