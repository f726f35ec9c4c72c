"""The front doors: one parser for every verb and option (:mod:`.commands`), the ``yolosnap`` CLI
(:mod:`.cli`), the ``%snapshot`` and ``%%in_env`` magics (:mod:`.magics`, :mod:`.in_env`), and how results are
shown (:mod:`.render`, :mod:`.progress`). Parsing and presentation only: every verb is a call into
:mod:`jupyter_yolosnap.service`."""
