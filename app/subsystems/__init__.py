"""One module per subsystem: each builds its part from the :class:`app.context.AppContext`, keeps it
on :class:`app.context.Services` and registers its shutdown steps with the lifecycle. The order they
run in is :func:`app.bootstrap.build_services`'s.
"""
