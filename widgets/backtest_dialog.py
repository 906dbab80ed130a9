"""The backtest dialog: strategy, parameters, symbol and history (generated or stored), Run with
progress and Cancel, then the equity curve, closed trades and the metrics the backtest computed
(total return, max drawdown, Sharpe, win rate), with the commission and slippage the run charged.

The dates shown are those of the data used: for generated history the From / To fields show the
generated bars' range, and after a run ``btDataRange`` names the first and last bar the backtest
actually used. The Sharpe caption says how it was annualised (per-bar returns x sqrt(bars per year),
from the result itself).

The run is :func:`services.strategies.backtest.run_backtest` on a worker thread (never the GUI
thread); progress is relayed to the GUI thread through :class:`TaskBridge`; Cancel sets the run's
cancel event. GUI thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QDateTime, QSortFilterProxyModel, Qt, QTimeZone
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.domain.money import InvalidNumberError, to_decimal
from services.domain.symbols import normalize_symbol
from services.strategies.api import ParamError, Strategy
from services.strategies.backtest import (
    BARS_PER_YEAR,
    BacktestCancelled,
    BacktestConfig,
    BacktestResult,
    run_backtest,
)
from services.strategies.synthetic import synthetic_bars, synthetic_range
from widgets import theme
from widgets.message_label import MessageLabel
from widgets.models.columns import Column, KeyedTableModel
from widgets.models.common import fmt_minute, named, zoned
from widgets.models.table import SORT_ROLE
from widgets.param_editor import ParamEditor
from widgets.tasks import TaskBridge

#: ``history(symbol, start, end)``: stored one-minute bars, blocking (called on a worker thread).
HistorySource = Callable[[str, datetime, datetime], list[Bar]]


@dataclass(frozen=True, slots=True)
class Replay:
    """Bars given to the dialog instead of its own history (a strategy lab point's): ``load()`` returns
    them (blocking, on the run's worker thread), every symbol merged in replay order; the run takes
    ``symbols`` and ``config`` as they are, and measures from ``measure_from`` when set (the bars
    before it only warm the strategy up). ``label`` names them in the History choice."""

    label: str
    symbols: tuple[str, ...]
    load: Callable[[], list[Bar]]
    config: BacktestConfig
    measure_from: datetime | None = None


def _utc(value: QDateTime) -> datetime:
    return datetime.fromtimestamp(value.toSecsSinceEpoch(), UTC)


def _qdt(value: datetime) -> QDateTime:
    return QDateTime.fromSecsSinceEpoch(int(value.timestamp()), QTimeZone.utc())


#: how each timeframe's bars per year are made up (US regular sessions)
_PER_YEAR_TEXT = {
    Timeframe.MIN_1: ("252·390", "one-minute"), Timeframe.MIN_5: ("252·78", "five-minute"),
    Timeframe.MIN_15: ("252·26", "15-minute"), Timeframe.HOUR_1: ("252·6.5", "hourly"),
    Timeframe.DAY_1: ("252", "daily"),
}  # fmt: skip


def sharpe_caption(periods_per_year: float) -> tuple[str, str]:
    """The Sharpe figure's caption and tooltip, saying how it was annualised."""
    for tf, per_year in BARS_PER_YEAR.items():
        if per_year == periods_per_year:
            formula, bars = _PER_YEAR_TEXT[tf]
            break
    else:
        formula, bars = f"{periods_per_year:g}", "per-bar"
    caption = f"Sharpe (annualised ×√({formula}), {bars} returns)"
    tip = (
        f"Mean over sample standard deviation of the {bars} returns of equity (risk-free rate 0), "
        f"times √({formula}) = √{periods_per_year:g}: the bars in a year of US regular sessions"
    )
    return caption, tip


_DAY = 86_400.0
#: the result figures per row (six figures in two rows)
METRIC_COLUMNS = 3


class DateAxis(pg.DateAxisItem):
    """The equity chart's UTC time axis. Only its finest tick level is labelled and every label is
    whole (``03 Jan``, ``Feb 2024``, ``14:30``): pyqtgraph's own draws a month's ``Feb`` and a day's
    ``02`` a few pixels apart, and days without their month."""

    #: True until a run's equity curve is drawn: an empty plot's 0..1 s range is no date to label
    #: (it read "01 Jan" nine times)
    empty = True

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        """One level: the finest, plus the coarser ticks (a midnight, a month's first day) that do
        not crowd one of its ticks. None while there is no data."""
        if self.empty:
            return []
        filled = [(sp, list(v)) for sp, v in super().tickValues(minVal, maxVal, size) if len(v)]
        if not filled:
            return []
        spacing, finest = filled[-1]
        merged = set(finest)
        for _, values in filled[:-1]:
            merged |= {v for v in values if all(abs(v - f) >= spacing / 2 for f in finest)}
        return [(spacing, sorted(merged))]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [tick_label(v, spacing) for v in values]


def tick_label(value: float, spacing: float) -> str:
    """One time-axis label for ticks ``spacing`` seconds apart (UTC)."""
    ts = datetime.fromtimestamp(value, UTC)
    if spacing >= 365 * _DAY:
        return f"{ts:%Y}"
    if spacing >= 28 * _DAY:
        return f"{ts:%b %Y}"
    if spacing >= _DAY or (ts.hour, ts.minute) == (0, 0):
        return f"{ts:%d %b}"
    return f"{ts:%H:%M}"


def _pct(v: float | None) -> str:
    if v is None:
        return "—"
    digits = 2 if v == 0 or abs(v) >= 0.001 else 4
    return f"{v * 100:,.{digits}f} %"


TRADE_COLUMNS: list[Column[Any]] = [
    Column("#", lambda r: str(r[0] + 1), sort=lambda r: r[0], numeric=True),
    Column("Symbol", lambda r: r[1].symbol),
    Column("Side", lambda r: "long" if r[1].direction > 0 else "short"),
    Column(zoned("Entry"), lambda r: fmt_minute(r[1].entry_ts), sort=lambda r: r[1].entry_ts),
    Column(zoned("Exit"), lambda r: fmt_minute(r[1].exit_ts), sort=lambda r: r[1].exit_ts),
    Column("Qty", lambda r: f"{r[1].qty:f}", sort=lambda r: r[1].qty, numeric=True),
    Column("Entry", lambda r: f"{r[1].entry_price:,.2f}", sort=lambda r: r[1].entry_price, numeric=True),
    Column("Exit", lambda r: f"{r[1].exit_price:,.2f}", sort=lambda r: r[1].exit_price, numeric=True),
    Column("P&L", lambda r: f"{r[1].pnl:,.2f}", sort=lambda r: r[1].pnl, numeric=True,
           foreground=lambda r: theme.sign_hex(r[1].pnl)),
]  # fmt: skip


def trades_model(parent: Any = None) -> KeyedTableModel[Any]:
    return KeyedTableModel(TRADE_COLUMNS, key=lambda r: r[0], parent=parent)


class BacktestDialog(QDialog):
    """objectName ``backtestDialog``. Children: ``btStrategy``, ``paramEditor``, ``btSymbol``,
    ``btSource``, ``btBars``, ``btSeed``, ``btStart``, ``btEnd``, ``btRun``, ``btCancel``,
    ``btProgress``, ``btStatus``, ``btEquityPlot``, ``btTrades``, ``btTotalReturn``,
    ``btMaxDrawdown``, ``btSharpe``, ``btWinRate``."""

    def __init__(
        self,
        registry: Mapping[str, type[Strategy]],
        *,
        history: HistorySource | None = None,
        kind: str | None = None,
        params: dict[str, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("backtestDialog")
        self.setWindowTitle("Backtest")
        self.resize(1100, 720)
        self.registry = dict(registry)
        self.history = history
        self.bridge = TaskBridge(self)
        self._cancel: threading.Event | None = None
        self.last_result: BacktestResult | None = None
        self.trades = trades_model(self)
        self.replay: Replay | None = None

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_setup())
        split.addWidget(self._build_results())
        split.setStretchFactor(1, 3)
        split.setSizes([340, 760])
        lay = QVBoxLayout(self)
        lay.addWidget(split)

        self.strategy.currentTextChanged.connect(lambda _: self._strategy_changed())
        if kind is not None and kind in self.registry:
            self.strategy.setCurrentText(kind)
        self._strategy_changed(params)
        self._source_changed()

    def _build_setup(self) -> QGroupBox:
        """The left side: strategy, its parameters, the history to run over, Run/Cancel, progress."""
        self.strategy = named(QComboBox(), "btStrategy")
        for key in sorted(self.registry):
            self.strategy.addItem(key)
        self.params = ParamEditor()
        self.symbol = named(QLineEdit("AAPL"), "btSymbol")
        self._build_history_inputs()
        setup = QGroupBox("Setup")
        form = QFormLayout(setup)
        form.addRow("Strategy", self.strategy)
        form.addRow(self.params)
        form.addRow("Symbol", self.symbol)
        form.addRow("History", self.source)
        form.addRow("Length", self.bars)
        form.addRow("Seed", self.seed)
        form.addRow("From", self.start)
        form.addRow("To", self.end)
        self.commission = named(QLineEdit("0"), "btCommission")
        self.commission.setToolTip("Charged on every fill, per share, in USD")
        self.slippage = named(QLineEdit("0"), "btSlippage")
        self.slippage.setToolTip(
            "Market and stop fills are made worse by this many basis points of the price "
            "(1 bp = 0.01 %); limit fills are not (a limit never fills beyond its price)"
        )
        form.addRow("Commission ($/share)", self.commission)
        form.addRow("Slippage (bp)", self.slippage)
        self.run = named(QPushButton("Run"), "btRun")
        self.run.setDefault(True)
        self.run.clicked.connect(self.start_run)
        self.cancel = named(QPushButton("Cancel"), "btCancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.cancel_run)
        self.progress = named(QProgressBar(), "btProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status = named(MessageLabel(), "btStatus")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run)
        buttons.addWidget(self.cancel)
        form.addRow(buttons)
        form.addRow(self.progress)
        form.addRow(self.status)
        return setup

    def _build_history_inputs(self) -> None:
        """History source, length and seed of generated history, and the stored history's range."""
        self.source = named(QComboBox(), "btSource")
        # as wide as the form, not as its longest choice (the list opens wide enough for it)
        self.source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source.setMinimumContentsLength(16)
        self.source.addItem("Generated history (seeded random walk, not market data)", "generated")
        if self.history is not None:
            self.source.addItem("Stored history", "stored")
        self.bars = named(QSpinBox(), "btBars")
        self.bars.setRange(100, 2_000_000)
        self.bars.setSingleStep(1000)
        self.bars.setValue(20_000)
        self.bars.setSuffix(" one-minute bars")
        self.seed = named(QSpinBox(), "btSeed")
        self.seed.setRange(0, 2_000_000_000)
        self.seed.setValue(1)
        now = QDateTime.currentDateTimeUtc()
        self.start = named(QDateTimeEdit(now.addDays(-30)), "btStart")
        self.end = named(QDateTimeEdit(now), "btEnd")
        for w in (self.start, self.end):
            w.setTimeZone(QTimeZone.utc())
            w.setDisplayFormat("yyyy-MM-dd HH:mm 'UTC'")
            w.setCalendarPopup(True)
        self.source.currentIndexChanged.connect(lambda _: self._source_changed())
        self.bars.valueChanged.connect(lambda _: self._source_changed())

    def _build_results(self) -> QWidget:
        """The right side: the metric figures over the equity curve and the trades table."""
        self.metrics: dict[str, QLabel] = {}
        grid = QGridLayout()
        self.captions: dict[str, MessageLabel] = {}
        sharpe, sharpe_tip = sharpe_caption(BacktestConfig().annualisation)
        for i, (key, title) in enumerate(
            (("TotalReturn", "Total return"), ("MaxDrawdown", "Max drawdown"), ("Sharpe", sharpe),
             ("WinRate", "Win rate"), ("Trades", "Closed trades"), ("Final", "Final equity"))
        ):  # fmt: skip
            caption = named(MessageLabel(title), f"bt{key}Caption")  # wraps: never widens the dialog
            caption.setStyleSheet(f"color: {theme.MUTED};")
            self.captions[key] = caption
            value = named(QLabel("—"), f"bt{key}")
            value.setStyleSheet("font-size: 16px; font-weight: 600;")
            row, col = divmod(i, METRIC_COLUMNS)  # two rows of three: narrow enough for any screen
            grid.addWidget(caption, 2 * row, col)
            grid.addWidget(value, 2 * row + 1, col)
            self.metrics[key] = value
        self.captions["Sharpe"].setToolTip(sharpe_tip)
        self.data_range = named(MessageLabel("Data used: —"), "btDataRange")
        self.data_range.setStyleSheet(f"color: {theme.MUTED};")
        # dates on the time axis (UTC, like the From / To fields), never bar numbers
        self.plot = pg.PlotWidget(axisItems={"bottom": DateAxis(orientation="bottom", utcOffset=0)})
        self.plot.setObjectName("btEquityPlot")
        self.plot.setBackground(theme.PLOT_BG)
        self.plot.showGrid(x=False, y=True, alpha=0.15)
        self.plot.setLabel("left", "Equity (USD)")
        self.plot.setLabel("bottom", "UTC")
        self.plot.setMenuEnabled(False)
        self.plot.getAxis("left").setStyle(showValues=False)  # no 0.0 .. 1.0 equity before a run
        self.curve = self.plot.plot([], [], pen=pg.mkPen(theme.INFO, width=1.5))
        self.table = self._build_trades_table()
        results = QWidget()
        rl = QVBoxLayout(results)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(grid)
        rl.addWidget(self.data_range)
        inner = QSplitter(Qt.Orientation.Vertical)
        inner.addWidget(self.plot)
        inner.addWidget(self.table)
        inner.setStretchFactor(0, 3)
        inner.setStretchFactor(1, 2)
        rl.addWidget(inner, 1)
        return results

    def _build_trades_table(self) -> QTableView:
        table = named(QTableView(), "btTrades")
        proxy = QSortFilterProxyModel(self)
        proxy.setSourceModel(self.trades)
        proxy.setSortRole(SORT_ROLE)
        table.setModel(proxy)
        table.setSortingEnabled(True)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        table.setAlternatingRowColors(True)
        table.horizontalHeader().setStretchLastSection(True)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        return table

    # -- form -------------------------------------------------------------------------------------
    def _strategy_changed(self, values: dict[str, str] | None = None) -> None:
        key = self.strategy.currentText()
        if key in self.registry:
            specs = tuple(s for s in self.registry[key].param_specs() if s.name != "symbols")
            self.params.set_specs(specs, values)
            if values and values.get("symbols"):
                self.symbol.setText(values["symbols"].split(";")[0])

    def use_replay(self, replay: Replay) -> None:
        """Run over ``replay``'s bars, symbols and costs (chosen, and the fields they fix locked)."""
        self.replay = replay
        if self.source.findData("replay") < 0:
            self.source.addItem(replay.label, "replay")
        self.source.setItemText(self.source.findData("replay"), replay.label)
        self.source.setCurrentIndex(self.source.findData("replay"))
        self.symbol.setText(";".join(replay.symbols))
        self.commission.setText(str(replay.config.commission_per_share))
        self.slippage.setText(str(replay.config.slippage_bps))
        self._source_changed()

    def _source_changed(self) -> None:
        generated = self.source.currentData() == "generated"
        replayed = self.source.currentData() == "replay"
        for spin in (self.bars, self.seed):
            spin.setEnabled(generated)
        for edit in (self.start, self.end):
            edit.setEnabled(not generated and not replayed)
        for line in (self.symbol, self.commission, self.slippage):
            line.setReadOnly(replayed)
        if generated:  # the dates shown are the generated bars' own
            first, last = synthetic_range(self.bars.value())
            self.start.setDateTime(_qdt(first))
            self.end.setDateTime(_qdt(last))

    def costs(self) -> BacktestConfig | str:
        """The run's configuration from the commission and slippage fields, or what is wrong."""
        try:
            commission = to_decimal(self.commission.text().strip() or "0", field="commission")
            slippage = to_decimal(self.slippage.text().strip() or "0", field="slippage")
            return BacktestConfig(commission_per_share=commission, slippage_bps=slippage)
        except (InvalidNumberError, ValueError) as exc:
            return str(exc)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.bound_to_screen()

    def bound_to_screen(self) -> None:
        """Never larger than the screen's free area (a run's figures and dates wrap instead)."""
        screen = self.screen()
        if screen is None:
            return
        room = screen.availableGeometry().size()
        self.setMaximumSize(room)
        if self.width() > room.width() or self.height() > room.height():
            self.resize(self.size().boundedTo(room))

    # -- run --------------------------------------------------------------------------------------
    def _say(self, text: str, ok: bool | None) -> None:
        self.status.setText(text)
        color = theme.ok_color(ok)
        self.status.setStyleSheet(f"color: {color};")

    def start_run(self) -> bool:
        if self._cancel is not None:
            return False
        key = self.strategy.currentText()
        replay = self.replay if self.source.currentData() == "replay" else None
        try:
            symbols = replay.symbols if replay is not None else (normalize_symbol(self.symbol.text()),)
            values = self.params.values()
            strategy = self.registry[key]({**values, "symbols": symbols})
        except (ParamError, ValueError) as exc:
            self._say(str(exc), ok=False)
            return False
        config = self.costs() if replay is None else replay.config
        if isinstance(config, str):
            self._say(config, ok=False)
            return False
        symbol, measure_from = ", ".join(symbols), None
        if replay is not None:
            load, what, measure_from = replay.load, replay.label, replay.measure_from
        elif self.source.currentData() == "generated":
            count, seed = self.bars.value(), self.seed.value()

            def load() -> list[Bar]:
                return synthetic_bars(symbol, count, seed=seed)

            what = f"{count:,} generated bars (seed {seed})"
        else:
            start = _utc(self.start.dateTime())
            end = _utc(self.end.dateTime())
            if end - start < timedelta(minutes=1):
                self._say("The range must end after it starts", ok=False)
                return False
            history = self.history
            assert history is not None

            def load() -> list[Bar]:
                return history(symbol, start, end)

            what = f"stored bars {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        cancel = threading.Event()
        self._cancel = cancel
        self.run.setEnabled(False)
        self.cancel.setEnabled(True)
        self.progress.setValue(0)
        self._say(f"Running {key} on {symbol}, {what}…", ok=None)
        bridge = self.bridge

        def progress(done: int, total: int | None) -> None:
            bridge.post(lambda: self._progress(done, total))

        def work() -> BacktestResult:
            bars = load()
            if not bars:
                raise ValueError(f"no bars for {symbol} in that range")
            every = max(100, len(bars) // 200)
            return run_backtest(strategy, bars, config=config, progress=progress, progress_every=every,
                                cancel=cancel, measure_from=measure_from)  # fmt: skip

        self.bridge.run_blocking(work, self._finished, self._failed, name="heron-backtest")
        return True

    def cancel_run(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.cancel.setEnabled(False)
            self._say("Cancelling…", ok=None)

    def _progress(self, done: int, total: int | None) -> None:
        if total:
            self.progress.setValue(int(1000 * done / total))
            self.progress.setFormat(f"{done:,} / {total:,} bars")

    def _reset(self) -> None:
        self._cancel = None
        self.run.setEnabled(True)
        self.cancel.setEnabled(False)

    def _failed(self, exc: BaseException) -> None:
        self._reset()
        if isinstance(exc, BacktestCancelled):
            self._say(f"Cancelled after {exc.bars_done:,} bars; no result.", ok=False)
        else:
            self._say(f"Backtest failed: {type(exc).__name__}: {exc}", ok=False)

    @staticmethod
    def _range_text(result: BacktestResult) -> str:
        first, last = result.first_bar, result.last_bar
        if first is None or last is None:
            return "Data used: no bars"
        return f"Data used: {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC, {result.bars:,} bars"

    def _finished(self, result: BacktestResult) -> None:
        self._reset()
        self.last_result = result
        self.progress.setValue(1000)
        m = self.metrics
        m["TotalReturn"].setText(_pct(result.total_return))
        m["TotalReturn"].setStyleSheet(
            "font-size: 16px; font-weight: 600; color: %s;"
            % (theme.UP if result.total_return >= 0 else theme.DOWN)
        )
        m["MaxDrawdown"].setText(_pct(result.max_drawdown))
        m["Sharpe"].setText("—" if result.sharpe is None else f"{result.sharpe:.2f}")
        caption, tip = sharpe_caption(result.periods_per_year)
        self.captions["Sharpe"].setText(caption)
        self.captions["Sharpe"].setToolTip(tip)
        self.data_range.setText(self._range_text(result))
        m["WinRate"].setText(_pct(result.win_rate))
        m["Trades"].setText(f"{len(result.trades):,}")
        m["Final"].setText(f"{result.final_equity:,.2f}")
        xs = [ts.timestamp() for ts, _ in result.equity_curve]
        ys = [float(e) for _, e in result.equity_curve]
        self.curve.setData(xs, ys)
        axis = self.plot.getAxis("bottom")
        if isinstance(axis, DateAxis):
            axis.empty = not xs
        self.plot.getAxis("left").setStyle(showValues=bool(xs))
        self.plot.enableAutoRange()
        self.trades.set_rows(list(enumerate(result.trades)))
        if result.error:
            self._say(f"The strategy failed during the run: {result.error}", ok=False)
        else:
            self._say(f"Done: {result.bars:,} bars, {len(result.fills):,} fills.", ok=True)


if __name__ == "__main__":  # preview: uv run python -m widgets.backtest_dialog [--screenshot FILE]
    import sys

    from services.strategies.builtin import builtin_registry
    from widgets.standalone import make_app, preview_args, show_preview

    args = preview_args("Heron backtest dialog preview (runs a real backtest over generated bars)")
    app = make_app()
    dialog = BacktestDialog(builtin_registry(), kind="sma_crossover")
    dialog.bars.setValue(8000)
    dialog.start_run()
    sys.exit(show_preview(app, dialog, args))
