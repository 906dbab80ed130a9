"""Reconciliation: local-vs-broker comparison, drift incidents, operator acknowledgement."""
