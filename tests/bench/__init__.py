"""`make bench` (`python -m tests.bench`): throughput and latency against the bare substrate.

Every figure of the system is printed beside the same kind of work done by the bare
substrate (PostgreSQL, the eventsourcing library, argon2, RabbitMQ) measured in the
same run on the same machine, so the ratios say what the system adds. See
docs/benchmarks.md for what each line means.
"""
