"""The README's "Trading from the window" says what the window does: each command's default key as
widgets/shortcuts.py binds it, the menus and settings by the names the window shows, and the chart's
order-line actions by the words of its menu."""

from __future__ import annotations

from pathlib import Path

from widgets.chart.orders import STAGE_ITEMS
from widgets.models.common import TIME_DISPLAY_TEXT, TimeDisplay
from widgets.shortcuts import COMMANDS, Command, plain_title

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_names_every_default_shortcut_and_where_to_change_them() -> None:
    section = _section("Trading from the window")
    for command, spec in COMMANDS.items():
        assert f"**{spec.default}**" in section or f"({spec.default})" in section, (command, spec.default)
    assert f"Help → {plain_title(Command.SHORTCUTS)}" in section
    assert f"File → {plain_title(Command.SETTINGS)} → Shortcuts" in section


def test_the_readme_names_the_time_zone_setting_and_the_chart_and_resume_actions() -> None:
    section = " ".join(_section("Trading from the window").split())
    assert 'Settings → Interface → "Times shown in"' in section
    widgets_dir = README.parent / "widgets"
    assert 'addTab(self._ui_tab(), "Interface")' in (widgets_dir / "settings_dialog.py").read_text()
    assert 'addRow("Times shown in", self.time_zone)' in (widgets_dir / "settings/limits_tab.py").read_text()
    assert TIME_DISPLAY_TEXT[TimeDisplay.EXCHANGE].startswith("Exchange time (ET")
    assert "Drag a line to a new price to replace the order" in section
    assert "Right-click a line to cancel its order" in section
    assert {text.split()[0] for _, _, text in STAGE_ITEMS} == {"Buy", "Sell"}
    assert {text.split()[1] for _, _, text in STAGE_ITEMS} == {"limit", "stop"}
    assert "buy or sell limit or stop" in section
    assert "**Resume trading…**" in section
