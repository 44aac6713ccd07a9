"""Test machinery that ships with zboot but is never loaded in a normal run:
nothing in zboot imports this package, except `zboot`'s entry point when a
fault-injection test sets ZBOOT_TEST_FAULT or ZBOOT_TEST_FAULT_TRACE (see
faults.py), and the test suite itself (recording.py)."""
