"""Sources: HTTP JSON, dataset replay; validation of raw readings."""
