"""Market data: history (bars, cache), streaming, NBBO book, candles, coalescing, staleness, recording."""
