"""deploy/: the CloudFormation templates stay what the bot needs, and the image can run.

cfn-lint and checkov check the templates in `make lint`; these tests keep them in step with
the code: the task role is `pitr-bot iam-policy`'s output, the member role is
`iam-policy --member`'s, and the state table is the one the store would create.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

from bot.iam import iam_policy, member_policies
from bot.policy import load_policy
from bot.store.dynamodb import DynamoStore

ROOT = Path(__file__).resolve().parents[1]


def _render_module():
    spec = importlib.util.spec_from_file_location("deploy_render", ROOT / "deploy" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render = _render_module()
BOT = ROOT / "deploy" / "pitr-bot.yml"
MEMBER = ROOT / "deploy" / "member-role.yml"


def test_the_task_role_policy_is_what_pitr_bot_iam_policy_prints_for_the_example():
    expected = iam_policy(
        load_policy(str(ROOT / "docs" / "policy.example.yml")), None, None, "pitr-bot-state"
    )
    assert render.template_policy(BOT.read_text()) == expected
    # the same document the docs show and the IAM tests evaluate
    assert expected == json.loads((ROOT / "docs" / "iam-policy.json").read_text())
    resources = load_template(BOT)["Resources"]
    assert resources["TaskRolePolicy"]["Properties"]["PolicyDocument"] == expected
    assert resources["TaskRolePolicy"]["Properties"]["Roles"] == [{"Ref": "TaskRole"}]


def test_the_committed_templates_are_what_render_writes():
    bot, member = render.render_examples()
    assert BOT.read_text() == bot, "run `python deploy/render.py` and commit deploy/"
    assert MEMBER.read_text() == member, "run `python deploy/render.py` and commit deploy/"


def test_render_for_a_policy_file_carries_it_and_its_pinned_iam_policy(tmp_path, capsys):
    policy_file = tmp_path / "policy.yml"
    policy_file.write_text('tables: ["orders"]\napprovers: [U0123ABC]\n# a comment: kept\n')
    render.main(["--policy-file", str(policy_file), "--account", "123456789012"])
    out = capsys.readouterr().out
    template = render.load_template_text(out)
    assert template["Parameters"]["PolicyYaml"]["Default"] == policy_file.read_text()
    expected = iam_policy(load_policy(str(policy_file)), "123456789012", None, "pitr-bot-state")
    assert template["Resources"]["TaskRolePolicy"]["Properties"]["PolicyDocument"] == expected
    assert "123456789012" in json.dumps(expected)


def test_the_member_role_is_iam_policy_member_with_the_account_left_to_each_stack():
    policy = load_policy(str(ROOT / "docs" / "policy.member-example.yml"))
    documents = member_policies(policy, *render.EXAMPLE_MEMBER)
    shown = render.template_policy(MEMBER.read_text())
    text = json.dumps(shown)
    assert "111111111111" not in text  # StackSets: no account ID baked in
    substituted = json.loads(
        re.sub(
            r'\{"Fn::Sub": ("[^"]*")\}',
            lambda m: m.group(1).replace("${AWS::AccountId}", "111111111111"),
            text,
        )
    )
    assert substituted == documents["permission_policy"]
    trust = load_template(MEMBER)["Resources"]["Role"]["Properties"]["AssumeRolePolicyDocument"]
    generated = documents["trust_policy"]["Statement"]
    assert [s["Action"] for s in trust["Statement"]] == [s["Action"] for s in generated]
    assert [s["Sid"] for s in trust["Statement"]] == [s["Sid"] for s in generated]
    for statement, want in zip(trust["Statement"], generated, strict=True):
        assert statement["Principal"] == {"AWS": {"Ref": "BotRoleArn"}}
        # The external ID guards AssumeRole only, as in the generated trust policy.
        assert ("Condition" in statement) == ("Condition" in want)


def test_the_state_table_is_the_one_the_store_would_create():
    created: dict[str, Any] = {}

    class Client:
        def create_table(self, **kwargs: Any) -> None:
            created.update(kwargs)

    store = DynamoStore.__new__(DynamoStore)
    store.client, store.table = Client(), "pitr-bot-state"
    store._create_table()
    table = load_template(BOT)["Resources"]["StateTable"]["Properties"]
    for key in ("TableName", "BillingMode", "KeySchema", "GlobalSecondaryIndexes"):
        assert table[key] == created[key], key
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        created["AttributeDefinitions"], key=str
    )
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_ttl", "Enabled": True}


def test_the_task_writes_its_work_directory_on_the_volume_and_requires_a_policy():
    task = load_template(BOT)["Resources"]["TaskDefinition"]["Properties"]
    container = task["ContainerDefinitions"][0]
    env = {e["Name"]: e["Value"] for e in container["Environment"] if "Name" in e}
    mounts = [m["ContainerPath"] for m in container["MountPoints"]]
    assert env["PITR_BOT_WORK_DIR"].startswith(tuple(f"{m}/" for m in mounts))
    assert env["PITR_BOT_REQUIRE_POLICY"] == "true"
    assert env["PITR_BOT_STATE"] == {"Fn::Sub": "dynamodb://${StateTable}"}
    assert container["User"] == "10001:10001"
    secrets = json.dumps(container["Secrets"])
    assert "SLACK_BOT_TOKEN" in secrets and "SlackSecretArn" in secrets


def dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def test_the_image_work_directory_is_on_the_volume_its_user_owns():
    text = (ROOT / "Dockerfile").read_text()
    env = dockerfile_env()
    volumes = json.loads(re.search(r"^VOLUME (\[.*\])$", text, re.M).group(1))
    owned = re.findall(r"mkdir (/\S+)[\s\\&]+chown pitr:pitr (\S+)", text)
    assert "USER 10001:10001" in text
    work_dir = env.get("PITR_BOT_WORK_DIR", "")
    assert any(work_dir.startswith(f"{v}/") for v in volumes), (work_dir, volumes)
    assert any(work_dir.startswith(f"{d}/") for d, _ in owned), (work_dir, owned)


def test_the_image_refuses_the_permissive_default_policy_unless_told():
    assert dockerfile_env().get("PITR_BOT_REQUIRE_POLICY") == "true"
    assert "PITR_BOT_POLICY" not in dockerfile_env()


def load_template(path: Path) -> dict[str, Any]:
    return render.load_template(path)


def test_the_export_bucket_grant_has_every_write_the_export_needs():
    """The template's ExportAccess (ExportS3Uri set) must let DynamoDB's export write what
    `pitr-bot iam-policy` grants for PITR_BOT_EXPORT_S3 (a missing s3:PutObjectAcl fails the
    export), and the bot read it back."""
    from bot.iam import EXPORT_S3_WRITES

    statements = load_template(BOT)["Resources"]["ExportAccess"]["Properties"]["PolicyDocument"]
    objects = statements["Statement"][0]
    assert set(objects["Action"]) == {*EXPORT_S3_WRITES, "s3:GetObject"}
