"""Risk: pre-trade limits, positions and exposure, hedging, kill switches."""
