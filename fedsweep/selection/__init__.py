"""Client selection: one file per method, each implementing `base.Selector`."""
