"""The broker: receives batches from many producers and appends them to an Arrow event log."""
