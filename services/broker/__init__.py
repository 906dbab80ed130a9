"""The broker boundary: a Broker protocol and its alpaca-py adapter (REST on worker threads)."""
