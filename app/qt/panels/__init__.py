"""The main window's panels, declared as lists of :class:`~app.qt.panels.spec.PanelSpec` (name, dock
area, factory): the trading panels in :mod:`app.qt.panels.trading`, the operations panels in
:mod:`app.qt.panels.ops`. Each factory gets the typed services it needs from
:class:`app.context.Services`; a service that is not running leaves its panel out with a note, or
in a clear "not running" state, never with invented data.
"""
