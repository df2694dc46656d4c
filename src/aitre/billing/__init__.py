"""Usage logs now; prices, the ledger and quota checks in later steps."""
