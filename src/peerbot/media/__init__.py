"""Media: sources that feed tracks, sinks that consume frames, and frame streams."""
