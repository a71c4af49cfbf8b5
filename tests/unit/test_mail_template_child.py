"""An edited mail template renders in a forked child (templates._render_in_child). Under
eventlet the child must never switch to the hub: the hub it inherited would run the
parent's other green threads in the child, writing on the database and broker sockets
both processes share (seen as psycopg's "unexpected result EMPTY_QUERY from command
'BEGIN'" in the parent). A green thread that notes its process id shows whether it ran
in a child."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import eventlet
eventlet.monkey_patch()
import os, sys
from services.mailgateway import templates

marks = sys.argv[1]
def busy():
    while True:
        with open(marks, "a") as f:
            f.write(f"{os.getpid()}\\n")
        eventlet.sleep(0)

eventlet.spawn(busy)
eventlet.sleep(0.01)
template = templates.Template("invoice_issued", "en", "Invoice {{ number }}", "Hello", edited=True)
for _ in range(5):
    subject, _body = templates.render(template, templates.SAMPLE_CONTEXT)
print(os.getpid(), subject)
"""


def test_the_rendering_child_runs_none_of_the_parents_green_threads(tmp_path):
    marks = tmp_path / "marks"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marks)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    parent, subject = done.stdout.split(maxsplit=1)
    assert subject.startswith("Invoice ")
    writers = set(marks.read_text().split())
    assert writers == {parent}, f"green threads ran in the child: {writers - {parent}}"
