"""Nurture decisions, free of SQL and HTTP (issue #17).

:mod:`.plan` decides who enrols, which step is due next and when a lead leaves;
:mod:`.pressure` when a lead may be e-mailed (frequency caps, quiet hours);
:mod:`.consent` whether it may be contacted at all; :mod:`.variants` the subject-line test;
:mod:`.mail` renders an e-mail; :mod:`.links` signs its links. The service
(:mod:`pyrometer.service.nurture`) loads, stores, sends and schedules them.
"""
