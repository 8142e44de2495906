import os
import sys

from .cli import main

try:
    code = main()
    sys.stdout.flush()  # inside the try: a closed pipe would otherwise fail at exit, with a traceback
except BrokenPipeError:
    # the reader went away (`python -m pipeline zoo | head -3`): stop quietly, as Python's docs advise
    # (stdout pointed at devnull so that the interpreter's own final flush does not fail again)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 1
sys.exit(code)
