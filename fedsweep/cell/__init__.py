"""A cell, one FL experiment, as an object built once per process from its resolved config.

`Cell` (cell.py) is what flows and tasks hold: the cell's identity (key, name, folder), its
validated settings and its parts, one module each:

- `data.CellData`: the samples and who holds them (the dataset, cached per process, the partition);
- `methods.CellMethods`: what trains and decides (the model, strategy, selector, faults, aggregation
  policy, client optimiser, device);
- `fleet.Fleet`: the simulated fleet (speeds, bandwidths, availability, simulated deadlines);
- `layout`: where the cell's state lives in its folder (`cell.json`, round blobs, client states,
  checkpoints) and the stores over it.

Inside a process the object is passed around; the folder path crosses only process and cluster
boundaries (a job rebuilds the cell with `open_cell`, once per process) and cache keys.
"""
