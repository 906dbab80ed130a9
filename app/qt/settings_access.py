"""The settings dialog for this session's profile, with the keyring and the credential check
("Test connection": GET /v2/account) handed in from here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.context import AppContext, Services
    from app.local_exchange import ExchangeSession
    from app.logging_setup import SecretRedactor
    from app.settings import Settings
    from services.broker.base import AccountIdentity

Validator = Callable[[str, str, str], Awaitable["AccountIdentity"]]


def open_settings(window: QWidget, ctx: AppContext, services: Services, *, show: bool = True) -> Any:
    """Build (and show, non-modal) the settings dialog for this session's profile."""
    from app.secrets import SecretStore
    from widgets.settings_dialog import SettingsDialog

    store = services.secret_store
    if store is None:
        store = SecretStore(on_secret=ctx.redactor.register)
    exchange = services.exchange
    dialog = SettingsDialog(
        ctx.settings,
        ctx.paths.settings_file,
        profile=ctx.paths.profile,
        data_root=ctx.paths.root,
        secret_store=store,
        validator=_validator(exchange, ctx.redactor),
        local_base_url=exchange.url if exchange is not None else None,
        parent=window,
    )

    def saved(new: Settings) -> None:
        ctx.settings = new

    dialog.saved.connect(saved)
    if show:
        dialog.show()
    return dialog


def _validator(exchange: ExchangeSession | None, redactor: SecretRedactor) -> Validator:
    """Credential validation (GET /v2/account) for the settings dialog's "Test connection".

    Local mode tests the running local exchange with its session keys.
    """

    async def validate(key_id: str, secret: str, environment: str) -> AccountIdentity:
        from services.broker.credentials import validate_credentials

        if secret:
            redactor.register(secret)
        if environment == "local":
            if exchange is None:
                raise RuntimeError("the local exchange is not running in this session")
            return await validate_credentials(
                exchange.keys.key_id, exchange.keys.secret, environment="local", base_url=exchange.url
            )
        return await validate_credentials(key_id, secret, environment=environment)

    return validate
