"""The scoring service: events in → validated → stored → scored → transitions."""
