"""The exit codes of every ``scoring`` command, in one place.

* 0: success
* 1: the work ran but found a problem (``check``: a step not marked ``optional: true`` is
  unavailable; ``score``: a row was rejected and ``--fail-on-reject`` is set, or every
  step failed for a row and the config says ``on_exhausted: raise``, in which case no
  output is written, or a step not marked ``optional: true`` could not load when the
  run started and ``--allow-unavailable`` was not given: the output is written, and
  the summary says so first; that is :data:`EXIT_STEP_UNAVAILABLE`)
* 2: usage error, bad configuration, or bad input (the message says which; for ``score``
  and ``compare``: an unreadable, empty or truncated file, a missing column, a column of
  a type that cannot hold numbers). Bad values in single rows are not exit 2: those rows
  go to the rejects file
* 3: an unexpected error (rerun with ``--debug`` for the traceback)
* 4: the work ran and was reported, but a step's ``close()`` or a plugin's
  ``scoring_engine_closed`` hook raised (one line names it); a command that found a
  problem of its own keeps its own code
* 74: the system refused a file (sysexits.h's ``EX_IOERR``): a full disk, a file over the
  size limit, a read-only filesystem, no permission, standard output or standard error
  closed; the message names the file. Nothing is left half written
* 129, 143: stopped by SIGHUP or SIGTERM (128 + the signal), after removing the files it
  was writing; 130: interrupted (Ctrl-C); 141: whoever read standard output stopped early
"""

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_STEP_UNAVAILABLE = EXIT_PROBLEM  # `score`: a step that is not optional never loaded
EXIT_USAGE = 2
EXIT_UNEXPECTED = 3
EXIT_CLOSE_FAILED = 4  # the work is done and reported, but something failed to close
EXIT_ENVIRONMENT = 74  # sysexits.h EX_IOERR: the system refused a file (disk full, EFBIG, EROFS)
EXIT_SIGNAL_BASE = 128  # a command stopped by signal N exits 128 + N, as a shell reports it
EXIT_INTERRUPTED = 130  # what a shell reports for a command Ctrl-C stopped (128 + SIGINT)
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command SIGPIPE stopped (128 + 13)
