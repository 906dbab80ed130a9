"""Qt item models and small Qt helpers for the operations panels (reconciliation, log, strategies,
shadow, backtest). Models only adapt service state; they hold no business logic."""
