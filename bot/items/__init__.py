"""Item-level recovery: compare a restored table with the live one and copy lost items back.

Pure core (no boto3, no Slack): `values` (DynamoDB JSON, canonical form), `diff` (classify),
`conditions` (no-clobber write conditions), `pacing` (token bucket). On disk: `jobfile`
(SQLite index + job checkpoint). AWS side: `engine` (parallel Scan, conditional writes), which is
handed a DynamoDB client by the gateway and never creates one.
"""
