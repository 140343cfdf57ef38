"""The run: the stage table and its runner, the run directory, the record files stages exchange."""
