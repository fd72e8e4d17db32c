"""Fault injection: one file per fault kind, each implementing `base.Fault`; `base.FaultPlan` composes them."""
