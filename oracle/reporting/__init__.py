"""Reports: many feed updates of one round, in the byte format the contracts verify."""
