"""Everything Qt in the composition root: the GUI runner, the status bar's wiring and feed, the
live-trading confirmation, Qt's message routing, the panels (a declarative list) and the previews.
Imported only for a windowed run (``--headless`` never imports Qt)."""
