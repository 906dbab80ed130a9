"""The order ticket: :class:`OrderTicket` (the widget, ``ticket.py``), its fields and layout
(``layout.py``), the form as data and Alpaca's rules for it (``form.py``), the summary line and the
field each risk check belongs to (``summary.py``), and the cancel / flatten actions (``actions.py``)."""

from widgets.order_ticket.form import TicketState
from widgets.order_ticket.ticket import OrderTicket

__all__ = ["OrderTicket", "TicketState"]
