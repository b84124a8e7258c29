"""Support code for the tests (no tests here): one home for every helper, fake and transport.

    api        the simulator behind httpx.MockTransport (no socket), plus the purpose-built
               transports for what only a transport can do: broken streams, arbitrary bytes
    clocks     fake clocks: a monotonic one that sleeps instantly, a wall clock that steps
    daemon     starting the real `inventory run` process and waiting on it
    db         PostgreSQL scratch databases, row counts
    faultkit   the reliability suites: snapshots, run rows, fresh-sync references, crash trials
    history    a four-cycle sync history for the reports tests
    settings   Settings as a user would write them (environment variables only)
    writes     counting the rows a sync writes

Test modules import from here, never from each other.
"""
