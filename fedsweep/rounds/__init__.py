"""A round's library: what the round flow (flows/round.py) calls between its tasks, and what the
jobs run wherever the engine puts them. Plain torch, no Prefect, no MLflow.

- `plan`: who trains this round and with what (selection, first participants, stragglers, the
  simulated clock);
- `work`: a client's local work (epochs or chunks of steps, faults, the strategy's local objective);
- `aggregate`: the round's valid updates into the next round's start;
- `evaluate`: the global model on the test split (and a selector's probe losses);
- `policy` and `deadline`: the aggregation policy's decisions and the round's deadline;
- `report`: the round's row of metrics and what the selector learns from it;
- `state`: the cell's state between rounds, its resume and its commit (the checkpoint groups);
- `blobs` and `refs`: where a round's tensors live, and the small references that name them.
"""
