"""python -m tests.bench [--help]"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # before anything imports socket or threading: nameko RPC needs it

import sys  # noqa: E402

from tests.bench.run import main  # noqa: E402

sys.exit(main())
