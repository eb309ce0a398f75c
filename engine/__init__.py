"""Pricing core: typed config, fixed-point numbers, the aggregated book and tier pricing."""
