"""Fault injection: one file per fault kind, each a `base.Fault`; `base.FaultPlan` composes them."""
