"""Write the IAM policies of `pitr-bot iam-policy` into the CloudFormation templates.

    python deploy/render.py
        rewrites deploy/pitr-bot.yml and deploy/member-role.yml for the example policy files
        (docs/policy.example.yml, docs/policy.member-example.yml); tests/test_deploy.py
        checks that the committed templates are what this writes.
    python deploy/render.py --policy-file policy.yml [--account ID --region R] > pitr-bot.yml
        the bot's template for your policy file: its task role policy, and the file itself as
        the PolicyYaml parameter's default. PITR_BOT_STATE is dynamodb://pitr-bot-state, the
        template's state table.
    python deploy/render.py --member member.json > member-role.yml
        a member account's template from `pitr-bot iam-policy --member ALIAS --bot-role ARN`.

Run from the repository root, with the bot installed (`make .venv/.installed-run`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOT_TEMPLATE = ROOT / "deploy" / "pitr-bot.yml"
MEMBER_TEMPLATE = ROOT / "deploy" / "member-role.yml"
EXAMPLE_POLICY = ROOT / "docs" / "policy.example.yml"
EXAMPLE_MEMBER_POLICY = ROOT / "docs" / "policy.member-example.yml"
EXAMPLE_MEMBER = ("prod", "arn:aws:iam::123456789012:role/pitr-bot-task")
STATE_TABLE = "pitr-bot-state"  # the template's StateTable
POLICY_BLOCK = re.compile(
    r"(?P<head>^(?P<indent> *)# iam-policy:start[^\n]*\n(?P=indent)PolicyDocument:\n)"
    r".*?(?P<tail>^(?P=indent)# iam-policy:end)",
    re.M | re.S,
)
POLICY_YAML_DEFAULT = re.compile(
    r'(^  PolicyYaml:\n    Type: String\n    Default: )"[^\n]*"$', re.M
)


def bot_document(policy_file: Path, account: str | None, region: str | None) -> dict[str, Any]:
    from bot.iam import iam_policy
    from bot.policy import load_policy

    return iam_policy(load_policy(str(policy_file)), account, region, STATE_TABLE)


def member_document(documents: dict[str, Any]) -> dict[str, Any]:
    """The member role's permission policy, its account ID left to each stack (StackSets)."""
    account = documents["role_arn"].split(":")[4]

    def sub(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: sub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [sub(item) for item in value]
        if isinstance(value, str) and f":{account}:" in value:
            return {"Fn::Sub": value.replace(f":{account}:", ":${AWS::AccountId}:")}
        return value

    return sub(documents["permission_policy"])


def with_policy(template: str, document: dict[str, Any]) -> str:
    def put(match: re.Match[str]) -> str:
        indent = match.group("indent") + "  "
        body = "\n".join(indent + line for line in json.dumps(document, indent=2).splitlines())
        return f"{match.group('head')}{body}\n{match.group('tail')}"

    rendered, count = POLICY_BLOCK.subn(put, template)
    if count != 1:
        raise SystemExit("render: the template has no `# iam-policy:start` block")
    return rendered


def with_policy_yaml(template: str, policy_text: str) -> str:
    # A JSON string is a YAML double-quoted scalar: the file's text, exactly.
    return POLICY_YAML_DEFAULT.sub(lambda m: m.group(1) + json.dumps(policy_text), template)


def template_policy(template: str) -> Any:
    """The policy document between the markers, as JSON (what tests compare)."""
    match = POLICY_BLOCK.search(template)
    if match is None:
        raise ValueError("no `# iam-policy:start` block")
    start, end = match.end("head"), match.start("tail")
    return json.loads(template[start:end])


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms: `!Ref X` reads as {"Ref": "X"}, `!Sub` as
    {"Fn::Sub": ...}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict[str, Any]:
    return load_template_text(path.read_text())


def load_template_text(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader + tags


def render_examples() -> tuple[str, str]:
    """The committed templates, as this script writes them."""
    from bot.iam import member_policies
    from bot.policy import load_policy

    bot = with_policy(BOT_TEMPLATE.read_text(), bot_document(EXAMPLE_POLICY, None, None))
    member_policy = load_policy(str(EXAMPLE_MEMBER_POLICY))
    documents = member_policies(member_policy, *EXAMPLE_MEMBER)
    member = with_policy(MEMBER_TEMPLATE.read_text(), member_document(documents))
    return bot, member


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy-file", type=Path, help="render the bot's template for it")
    parser.add_argument("--account", help="with --policy-file: pin ARNs to this account")
    parser.add_argument("--region", help="with --policy-file: pin ARNs to this region")
    parser.add_argument("--member", type=Path, help="render a member account's template")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.member:
        documents = json.loads(args.member.read_text())
        print(with_policy(MEMBER_TEMPLATE.read_text(), member_document(documents)), end="")
    elif args.policy_file:
        document = bot_document(args.policy_file, args.account, args.region)
        template = with_policy(BOT_TEMPLATE.read_text(), document)
        print(with_policy_yaml(template, args.policy_file.read_text()), end="")
    else:
        bot, member = render_examples()
        BOT_TEMPLATE.write_text(bot)
        MEMBER_TEMPLATE.write_text(member)
    return 0


if __name__ == "__main__":
    sys.exit(main())
