"""Qt views only: the main window, docks, dialogs and Qt item models adapting service stores.

Widgets receive service objects from :mod:`app` through their constructors; they never import the
Alpaca SDK or the local exchange's internals.
"""
