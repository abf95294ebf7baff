import sys

if "consume" in sys.argv[1:]:  # before the CLI's imports: a SIGTERM while starting stops cleanly
    from .stream.held import hold_signals

    hold_signals()

from .cli import main  # noqa: E402

main()
