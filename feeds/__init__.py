"""LP connectivity: market-data feeds, supervisor, LP simulator, recorder and replay."""
