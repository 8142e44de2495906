import os
import select
import sys

from .cli import main


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on its write end)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no stdout, no fd, no poll: not that case
        return False


try:
    try:
        code = main()
    except SystemExit as exit_:  # --help and the parsers' own exits: flushed below like any other
        code = exit_.code
    if sys.stdout is not None:
        sys.stdout.flush()  # inside the try: a closed pipe would otherwise fail at exit, with a traceback
except BrokenPipeError:
    if not _stdout_reader_gone():  # another pipe (a loader worker's, a socket): a real error
        raise
    # the reader went away (`python -m pipeline zoo | head -3`): stop quietly, as Python's docs advise
    # (stdout pointed at devnull so that the interpreter's own final flush does not fail again)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 1
sys.exit(code)
