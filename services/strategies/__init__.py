"""Automated strategies: the strategy API, the runner and portfolio manager, built-in strategies
and the replay/backtest driver. Strategies emit attributed order intents; they never hold a broker."""
