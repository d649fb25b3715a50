"""Restore drills: prove a table's backups restore, on a schedule or on `/pitr-drill`.

`model` (pure: the drill record, its state machine, the schedule), `engine` (run, verify and
clean up with compare-and-set and leases), `aws` (the drill's DynamoDB calls, a gateway).
"""
