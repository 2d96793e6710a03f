"""`python -m kubetrain_trainer`: the trainer image's ENTRYPOINT."""

from kubetrain_trainer.cli import main

raise SystemExit(main())
