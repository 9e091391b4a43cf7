"""Stop requests: SIGTERM and SIGINT become a flag that the training loop checks between calls.

    with signals.StopRequest() as stop:
        while training:
            if stop.requested: save and leave
            ...

The first signal asks the run to checkpoint at the end of the current compiled call and exit; a
second one interrupts at once (KeyboardInterrupt). The previous handlers come back on exit.
"""

import signal

from absl import logging


class StopRequest:
    """Turns SIGTERM/SIGINT into a flag the loop checks between tf.function calls."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        del frame
        if self.signal_name is not None:  # a second signal: stop waiting, stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        logging.warning("%s received: saving a checkpoint at the end of this call, then exiting",
                        self.signal_name)

    @property
    def requested(self):
        return self.signal_name is not None
