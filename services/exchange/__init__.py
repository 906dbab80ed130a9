"""Heron's local Alpaca-compatible paper exchange; a separate program: ``python -m services.exchange``.

How faithfully it imitates Alpaca, rule by rule with the Alpaca source and the test of each, and
what it deliberately does not imitate: the "Fidelity to Alpaca" table in README.md (section
"Local exchange").
"""
