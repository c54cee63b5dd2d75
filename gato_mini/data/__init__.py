"""The data path: field specs, reading and writing logged episodes (Minari)."""
