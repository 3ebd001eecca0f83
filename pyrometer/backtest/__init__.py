"""Backtests: what a playbook would have done on past events, counted honestly.

Pure: :mod:`~pyrometer.backtest.sweep` scores every lead at every as-of time in one pass,
:mod:`~pyrometer.backtest.metrics` counts what those temperatures were worth against the
outcomes that came after. Loading files and printing reports live elsewhere.
"""
