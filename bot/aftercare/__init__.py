"""After a restore is ACTIVE: what it left out, and the fixes people may click.

`rules` (pure: what a restore leaves out, how source and target compare, which fixes are
offered), `steps` (records the comparison and each fix on the request, compare-and-set),
`aws` (the after-restore reads and fixes: DynamoDB, Application Auto Scaling; a gateway).
"""
