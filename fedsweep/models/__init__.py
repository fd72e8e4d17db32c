"""Models: one file per architecture, each an `nn.Module` with a keyword-only constructor
`(*, input_shape, num_classes, ...)`; `init.build_model` builds one with seeded initial weights."""
