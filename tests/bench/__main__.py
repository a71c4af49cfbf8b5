"""python -m tests.bench [--help]"""

import eventlet

eventlet.monkey_patch()  # before anything imports socket or threading: nameko RPC needs it

import sys  # noqa: E402

from tests.bench.run import main  # noqa: E402

sys.exit(main())
