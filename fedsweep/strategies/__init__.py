"""FL methods: one file per method, each implementing `base.Strategy`."""
