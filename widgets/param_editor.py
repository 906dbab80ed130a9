"""A parameter editor generated from a strategy's :class:`~services.strategies.api.Param` list.

Each declared parameter gets a typed editor: a spin box for ``int`` (with its range), a check box
for ``bool``, a combo box when it has ``choices``, and a line edit for ``float``, ``Decimal``,
``str`` and symbol lists. Values are validated by the declaration itself (:meth:`Param.coerce`), so
the editor and the command line accept exactly the same things. GUI thread only.
"""

from __future__ import annotations

import contextlib
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from services.strategies.api import Param, ParamError
from widgets import theme

_INT_LIMIT = 2_000_000_000


class ParamEditor(QWidget):
    """objectName ``paramEditor``; one editor per parameter named ``param_<name>``."""

    def __init__(self, specs: tuple[Param, ...] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("paramEditor")
        self._form = QFormLayout(self)
        self._form.setContentsMargins(0, 0, 0, 0)
        self.specs: tuple[Param, ...] = ()
        self.editors: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        self.set_specs(specs)

    def set_specs(self, specs: tuple[Param, ...], values: dict[str, str] | None = None) -> None:
        while self._form.rowCount():
            self._form.removeRow(0)
        self.specs = specs
        self.editors, self.errors = {}, {}
        for spec in specs:
            editor = self._editor(spec)
            editor.setObjectName(f"param_{spec.name}")
            tip = spec.description
            if spec.minimum is not None or spec.maximum is not None:
                tip += f" (range {spec.minimum if spec.minimum is not None else '…'} to "
                tip += f"{spec.maximum if spec.maximum is not None else '…'})"
            editor.setToolTip(tip)
            self.editors[spec.name] = editor
            if values and spec.name in values:
                self._set_text(spec, editor, values[spec.name])
            err = QLabel()
            err.setStyleSheet(f"color: {theme.DOWN};")
            err.setWordWrap(True)
            err.hide()
            self.errors[spec.name] = err
            box = QVBoxLayout()
            box.setSpacing(1)
            box.addWidget(editor)
            box.addWidget(err)
            label = QLabel(spec.name.replace("_", " "))
            label.setToolTip(spec.description)
            self._form.addRow(label, box)

    def _editor(self, spec: Param) -> QWidget:
        if spec.choices is not None:
            combo = QComboBox()
            for choice in spec.choices:
                combo.addItem(spec.to_text(choice) if spec.type is not tuple else str(choice), choice)
            combo.setCurrentText(spec.to_text(spec.default))
            return combo
        if spec.type is bool:
            check = QCheckBox()
            check.setChecked(bool(spec.default))
            return check
        if spec.type is int:
            spin = QSpinBox()
            lo = int(spec.minimum) if spec.minimum is not None else -_INT_LIMIT
            hi = int(spec.maximum) if spec.maximum is not None else _INT_LIMIT
            spin.setRange(max(lo, -_INT_LIMIT), min(hi, _INT_LIMIT))
            spin.setValue(int(spec.default))
            return spin
        line = QLineEdit(spec.to_text(spec.default))
        if spec.type is tuple:
            line.setPlaceholderText("AAPL;MSFT")
        return line

    @staticmethod
    def _set_text(spec: Param, editor: QWidget, text: str) -> None:
        if isinstance(editor, QComboBox):
            editor.setCurrentText(text)
        elif isinstance(editor, QCheckBox):
            editor.setChecked(text.strip().lower() in ("1", "true", "yes", "on", "y"))
        elif isinstance(editor, QSpinBox):
            with contextlib.suppress(ValueError):  # a bad saved value keeps the default
                editor.setValue(int(text))
        elif isinstance(editor, QLineEdit):
            editor.setText(text)

    @staticmethod
    def _raw(editor: QWidget) -> Any:
        if isinstance(editor, QComboBox):
            return editor.currentData()
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QSpinBox):
            return editor.value()
        assert isinstance(editor, QLineEdit)
        return editor.text()

    def values(self) -> dict[str, Any]:
        """Typed, validated values; raises :class:`ParamError` naming every invalid parameter
        (each also shown inline)."""
        out: dict[str, Any] = {}
        problems: list[str] = []
        for spec in self.specs:
            err = self.errors[spec.name]
            try:
                out[spec.name] = spec.coerce(self._raw(self.editors[spec.name]))
            except ParamError as exc:
                err.setText(str(exc))
                err.show()
                problems.append(str(exc))
            else:
                err.hide()
        if problems:
            raise ParamError("; ".join(problems))
        return out

    def set_value_text(self, name: str, text: str) -> None:
        spec = next(s for s in self.specs if s.name == name)
        self._set_text(spec, self.editors[name], text)
