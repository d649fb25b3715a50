"""`pitr-bot iam-policy` for the export path: ExportTableToPointInTime and DescribeExport on the
sources only; with PITR_BOT_EXPORT_S3 (or an account's `export_s3`), what DynamoDB's export
writes with the bot's permissions on that bucket prefix and the bot's reads there, nothing else."""

from __future__ import annotations

import pytest
from support.iam_eval import allowed

from bot.iam import iam_policy, member_policies
from bot.policy import Policy

ACCOUNT, REGION, PROD = "123456789012", "eu-west-1", "111111111111"
POLICY = Policy(tables=["orders"], target_pattern="restored-*")


def table(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:dynamodb:{REGION}:{account}:table/{name}"


def obj(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


@pytest.fixture(scope="module")
def doc() -> dict:
    return iam_policy(POLICY, ACCOUNT, REGION, export_s3="s3://pitr-exports/bot")


CASES = [
    ("dynamodb:ExportTableToPointInTime", table("orders"), {}, True),
    ("dynamodb:ExportTableToPointInTime", table("secrets"), {}, False),
    ("dynamodb:DescribeExport", table("orders") + "/export/01700000000000-abcd", {}, True),
    ("dynamodb:DescribeExport", table("secrets") + "/export/01700000000000-abcd", {}, False),
    ("s3:PutObject", obj("pitr-exports", "bot/AWSDynamoDB/x/manifest-summary.json"), {}, True),
    ("s3:AbortMultipartUpload", obj("pitr-exports", "bot/AWSDynamoDB/data/a.json.gz"), {}, True),
    ("s3:PutObjectAcl", obj("pitr-exports", "bot/AWSDynamoDB/data/a.json.gz"), {}, True),
    ("s3:GetObject", obj("pitr-exports", "bot/AWSDynamoDB/data/a.json.gz"), {}, True),
    ("s3:GetObject", obj("pitr-exports", "payroll/salaries.csv"), {}, False),  # other prefix
    ("s3:PutObject", obj("other-bucket", "bot/x"), {}, False),
    ("s3:DeleteObject", obj("pitr-exports", "bot/x"), {}, False),
    ("s3:ListBucket", "arn:aws:s3:::pitr-exports", {"s3:prefix": "bot/AWSDynamoDB/"}, True),
    ("s3:ListBucket", "arn:aws:s3:::pitr-exports", {"s3:prefix": "payroll/"}, False),
]


@pytest.mark.parametrize(("action", "resource", "context", "expected"), CASES)
def test_the_export_grants_are_on_the_sources_and_the_bucket_prefix_only(
    doc, action, resource, context, expected
):
    assert allowed(doc, action, resource, context) is expected


def test_without_an_export_bucket_no_s3_action_at_all():
    doc = iam_policy(POLICY, ACCOUNT, REGION)
    assert not any(a.startswith("s3:") for s in doc["Statement"] for a in s["Action"])
    assert not allowed(doc, "s3:PutObject", obj("pitr-exports", "bot/x"))


def member_exporting(**account: str) -> dict:
    """The permission policy of member account `prod`, which exports to its own bucket."""
    entry = {
        "role_arn": f"arn:aws:iam::{PROD}:role/pitr-bot",
        "regions": [REGION],
        "export_s3": "s3://prod-exports/pitr",
        **account,
    }
    policy = Policy.model_validate({"tables": ["prod:orders"], "accounts": {"prod": entry}})
    doc = member_policies(policy, "prod", f"arn:aws:iam::{ACCOUNT}:role/pitr-bot")
    return doc["permission_policy"]


def test_a_member_account_exports_to_its_own_bucket():
    member = member_exporting()
    assert allowed(member, "dynamodb:ExportTableToPointInTime", table("orders", PROD))
    assert allowed(member, "s3:PutObject", obj("prod-exports", "pitr/AWSDynamoDB/x/_started"))
    assert allowed(member, "s3:GetObject", obj("prod-exports", "pitr/AWSDynamoDB/data/a.json.gz"))
    assert not allowed(member, "s3:PutObject", obj("pitr-exports", "bot/x"))


def test_a_bad_export_s3_is_refused_by_the_policy_and_the_settings():
    with pytest.raises(ValueError, match="s3://"):
        Policy.model_validate(
            {"accounts": {"p": {"role_arn": f"arn:aws:iam::{PROD}:role/x", "export_s3": "bkt"}}}
        )
    from bot.settings import Settings

    with pytest.raises(ValueError, match="s3://"):
        Settings(_env_file=None, PITR_BOT_EXPORT_S3="https://bucket/x")


KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VIA_S3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}


@pytest.mark.parametrize(
    ("action", "resource", "context", "expected"),
    [
        ("kms:GenerateDataKey", KEY, VIA_S3, True),  # the export's writes
        ("kms:Decrypt", KEY, VIA_S3, True),  # the bot's reads (and multipart uploads)
        ("kms:Decrypt", KEY, {}, False),  # not directly: through S3 only
        ("kms:Decrypt", KEY, {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"}, False),
        ("kms:Decrypt", KEY, {"kms:ViaService": "s3.us-east-1.amazonaws.com"}, False),
        ("kms:Decrypt", KEY.replace("1234abcd", "99999999"), VIA_S3, False),  # another key
        ("kms:Encrypt", KEY, VIA_S3, False),
        ("kms:CreateGrant", KEY, VIA_S3, False),
    ],
)
def test_an_sse_kms_export_bucket_key_is_usable_through_s3_only(
    action, resource, context, expected
):
    doc = iam_policy(POLICY, ACCOUNT, REGION, export_s3="s3://pitr-exports/bot", export_kms_key=KEY)
    assert allowed(doc, action, resource, context) is expected
    (statement,) = [s for s in doc["Statement"] if s["Sid"] == "UseTheExportBucketKeyThroughS3"]
    assert statement["Resource"] in (KEY, [KEY])


def test_without_an_export_key_no_kms_grant_for_exports():
    doc = iam_policy(POLICY, ACCOUNT, REGION, export_s3="s3://pitr-exports/bot")
    assert not any(a.startswith("kms:") for s in doc["Statement"] for a in s["Action"])


def test_a_member_accounts_export_key_is_granted_in_its_role():
    key = f"arn:aws:kms:{REGION}:{PROD}:key/abcd"
    member = member_exporting(export_s3_kms_key=key)
    assert allowed(member, "kms:GenerateDataKey", key, VIA_S3)
    assert not allowed(member, "kms:GenerateDataKey", KEY, VIA_S3)


@pytest.mark.parametrize("bad", ["alias/exports", "1234abcd-12ab", "arn:aws:kms:eu-west-1:1:key/x"])
def test_an_export_key_must_be_a_key_arn(bad):
    with pytest.raises(ValueError, match="KMS key ARN"):
        Policy.model_validate(
            {
                "accounts": {
                    "prod": {
                        "role_arn": f"arn:aws:iam::{PROD}:role/pitr-bot",
                        "export_s3": "s3://prod-exports/pitr",
                        "export_s3_kms_key": bad,
                    }
                }
            }
        )


def test_a_bad_export_key_setting_is_one_clear_problem():
    from bot.settings import load_settings

    env = {
        "PITR_BOT_EXPORT_S3": "s3://pitr-exports/p",
        "PITR_BOT_EXPORT_S3_KMS_KEY": "alias/exports",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.chdir("/")  # no .env file
        settings, problems = load_settings()
    (problem,) = problems
    assert problem.startswith("PITR_BOT_EXPORT_S3_KMS_KEY") and "KMS key ARN" in problem
    assert settings is not None and settings.export_s3_kms_key is None
