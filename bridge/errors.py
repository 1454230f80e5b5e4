"""The one exception type the command line turns into a one-line error."""


class BridgeError(Exception):
    """Bad input, settings or output the user can fix.

    The CLI prints the message as ``daw-bridge: error: <message>`` and exits
    with status 2, without a traceback: the message must say what is wrong.
    """
