"""Routing hot leads to sales reps: the pure decisions (issue #12, first step).

Who a lead goes to (:mod:`.assign`), whether a transition routes it (:func:`.assign.routes`),
who the reps are (:mod:`.reps`) and when their answer is due (:mod:`.sla`). No storage, no
HTTP: the service feeds these functions what it has stored and records what they decide, so
every rule can be tested, and explained to a sales manager, on its own.
"""
