"""System models: per-client speeds, bandwidths and availability, and the simulated clock."""
