"""The settings dialog's parts: one module per tab and the small interface through which the
composition root hands in settings files and the keyring (:mod:`widgets.settings.backend`)."""
