"""The inference engines turnout runs: one module per engine, and what they share."""
