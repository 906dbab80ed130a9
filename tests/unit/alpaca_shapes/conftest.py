from tests.unit.orders.conftest import db

__all__ = ["db"]
