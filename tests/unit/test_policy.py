"""Who may request, approve and deny: bot.policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.policy import Policy, PolicyError, load_policy


def nobody(_group: str) -> set[str] | None:
    return set()


def groups(mapping: dict[str, set[str] | None]):
    calls: list[str] = []

    def members(group: str) -> set[str] | None:
        calls.append(group)
        return mapping.get(group, set())

    members.calls = calls  # type: ignore[attr-defined]
    return members


# -- defaults ----------------------------------------------------------------------------------
def test_defaults_let_anyone_but_the_requester_approve() -> None:
    policy = Policy()
    assert policy.required_approvals == 1
    assert policy.request_ttl_minutes == 60
    assert policy.may_request("U1", "C1", "AnyTable", nobody).allowed
    assert policy.may_approve("U2", "U1", "AnyTable", nobody).allowed
    refused = policy.may_approve("U1", "U1", "AnyTable", nobody)
    assert not refused.allowed
    assert "someone else" in refused.reason


def test_self_approval_allowed_only_when_configured() -> None:
    assert not Policy(allow_self_approval=False).may_approve("U1", "U1", "T1x", nobody).allowed
    assert Policy(allow_self_approval=True).may_approve("U1", "U1", "T1x", nobody).allowed


def test_requester_may_always_withdraw_by_denying() -> None:
    policy = Policy(approvers=["U9"])
    assert policy.may_deny("U1", "U1", "Orders", nobody).allowed
    assert not policy.may_deny("U3", "U1", "Orders", nobody).allowed
    assert policy.may_deny("U9", "U1", "Orders", nobody).allowed


def test_approvers_list() -> None:
    policy = Policy(approvers=["U2", "U3"])
    assert policy.may_approve("U2", "U1", "Orders", nobody).allowed
    assert policy.may_approve("U3", "U1", "Orders", nobody).allowed
    refused = policy.may_approve("U4", "U1", "Orders", nobody)
    assert not refused.allowed
    assert "not one of the approvers" in refused.reason


def test_requester_listed_as_approver_still_needs_someone_else() -> None:
    policy = Policy(approvers=["U1", "U2"])
    assert not policy.may_approve("U1", "U1", "Orders", nobody).allowed


def test_user_group_approver_via_members() -> None:
    members = groups({"SDBA": {"U5", "U6"}})
    policy = Policy(approvers=["SDBA"])
    assert policy.may_approve("U5", "U1", "Orders", members).allowed
    assert not policy.may_approve("U7", "U1", "Orders", members).allowed
    assert "SDBA" in members.calls


def test_group_resolver_failure_refuses() -> None:
    policy = Policy(approvers=["SDBA"])
    failing = groups({"SDBA": None})
    decision = policy.may_approve("U5", "U1", "Orders", failing)
    assert not decision.allowed


def test_group_resolver_failure_does_not_block_listed_users() -> None:
    policy = Policy(approvers=["SDBA", "U2"])
    assert policy.may_approve("U2", "U1", "Orders", groups({"SDBA": None})).allowed


def test_requesters_restrict_who_may_ask() -> None:
    policy = Policy(requesters=["U1", "SONCALL"])
    members = groups({"SONCALL": {"U8"}})
    assert policy.may_request("U1", "C1", "Orders", members).allowed
    assert policy.may_request("U8", "C1", "Orders", members).allowed
    refused = policy.may_request("U2", "C1", "Orders", members)
    assert not refused.allowed
    assert "not allowed to request" in refused.reason
    assert not policy.may_request("U8", "C1", "Orders", groups({"SONCALL": None})).allowed


def test_channels_restrict_where_to_ask() -> None:
    policy = Policy(channels=["COPS"])
    assert policy.may_request("U1", "COPS", "Orders", nobody).allowed
    refused = policy.may_request("U1", "CRANDOM", "Orders", nobody)
    assert not refused.allowed
    assert "channel" in refused.reason


def test_tables_globs() -> None:
    policy = Policy(tables=["prod-*", "Orders"])
    assert policy.may_request("U1", "C1", "prod-users", nobody).allowed
    assert policy.may_request("U1", "C1", "Orders", nobody).allowed
    refused = policy.may_request("U1", "C1", "staging-users", nobody)
    assert not refused.allowed
    assert "staging-users" in refused.reason
    # Globs are case-sensitive, like DynamoDB table names.
    assert not policy.may_request("U1", "C1", "orders", nobody).allowed


# -- rules -------------------------------------------------------------------------------------
RULED = Policy(
    approvers=["U2", "U3"],
    required_approvals=1,
    request_ttl_minutes=60,
    rules=[
        {"tables": ["prod-pay*"], "approvers": ["U9", "U8"], "required_approvals": 2},
        {"tables": ["prod-*"], "allow_self_approval": True, "request_ttl_minutes": 15},
        {"tables": ["prod-payments"], "approvers": ["U4"]},
    ],
)


def test_first_matching_rule_wins() -> None:
    rule = RULED.for_table("prod-payments")
    assert rule.rule_index == 0
    assert rule.approvers == ("U9", "U8")
    assert rule.required_approvals == 2
    assert rule.request_ttl_minutes == 60  # not set in the rule: the default
    assert not RULED.may_approve("U2", "U1", "prod-payments", nobody).allowed
    assert RULED.may_approve("U9", "U1", "prod-payments", nobody).allowed
    assert not RULED.may_approve("U4", "U1", "prod-payments", nobody).allowed


def test_second_rule_applies_to_other_prod_tables() -> None:
    rule = RULED.for_table("prod-users")
    assert rule.rule_index == 1
    assert rule.allow_self_approval
    assert rule.request_ttl_minutes == 15
    assert rule.approvers == ("U2", "U3")
    assert RULED.may_approve("U2", "U2", "prod-users", nobody).allowed


def test_unmatched_table_uses_defaults() -> None:
    rule = RULED.for_table("staging-users")
    assert rule.rule_index is None
    assert rule.approvers == ("U2", "U3")
    assert rule.required_approvals == 1
    assert not rule.allow_self_approval
    assert not RULED.may_approve("U9", "U1", "staging-users", nobody).allowed


# -- problems ----------------------------------------------------------------------------------
def test_two_approvals_with_one_listed_user_is_a_problem() -> None:
    problems = Policy(approvers=["U2"], required_approvals=2).problems()
    assert len(problems) == 1
    assert "2 approvals required" in problems[0]


def test_two_listed_users_suffice_for_two_approvals() -> None:
    assert Policy(approvers=["U2", "U3"], required_approvals=2).problems() == []


def test_groups_make_required_approvals_satisfiable() -> None:
    assert Policy(approvers=["U2", "SDBA"], required_approvals=3).problems() == []


def test_unsatisfiable_rule_is_named() -> None:
    policy = Policy(
        approvers=["U2", "U3"],
        rules=[{"tables": ["prod-*"], "approvers": ["U9"], "required_approvals": 2}],
    )
    problems = policy.problems()
    assert len(problems) == 1
    assert "rules[0]" in problems[0]
    assert "prod-*" in problems[0]


def test_rule_inheriting_too_few_approvers_is_a_problem() -> None:
    policy = Policy(approvers=["U2"], rules=[{"tables": ["prod-*"], "required_approvals": 2}])
    assert any("rules[0]" in p for p in policy.problems())


# -- load_policy -------------------------------------------------------------------------------
FULL = """\
approvers: [U0AAA1, U0AAA2, S0DBA]
required_approvals: 1
allow_self_approval: false
request_ttl_minutes: 30
tables: ["prod-*", "Orders"]
channels: [C0OPS, G0PRIVATE]
requesters: [U0AAA1, W0GRID, S0ONCALL]
rules:
  - tables: ["prod-payments*"]
    approvers: [U0PAY1, U0PAY2]
    required_approvals: 2
    allow_self_approval: false
    requesters: [U0AAA1]
    request_ttl_minutes: 10.5
  - tables: ["Orders"]
    allow_self_approval: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_full_policy(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, FULL))
    assert policy.approvers == ["U0AAA1", "U0AAA2", "S0DBA"]
    assert policy.request_ttl_minutes == 30
    assert policy.tables == ["prod-*", "Orders"]
    assert policy.channels == ["C0OPS", "G0PRIVATE"]
    assert policy.requesters == ["U0AAA1", "W0GRID", "S0ONCALL"]
    assert len(policy.rules) == 2
    pay = policy.for_table("prod-payments-eu")
    assert pay.required_approvals == 2
    assert pay.approvers == ("U0PAY1", "U0PAY2")
    assert pay.requesters == ("U0AAA1",)
    assert pay.request_ttl_minutes == 10.5
    assert policy.for_table("Orders").allow_self_approval
    assert not policy.may_request("U0AAA2", "C0OPS", "prod-payments-eu", nobody).allowed
    assert policy.may_request("U0AAA1", "C0OPS", "prod-payments-eu", nobody).allowed


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, "approvers: [U2]\napprover: [U3]\n"))
    assert any("approver" in p for p in err.value.problems)


def test_unknown_key_in_rule_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, "rules:\n  - tables: ['x*']\n    aprovers: [U2]\n"))
    assert any("rules.0.aprovers" in p for p in err.value.problems)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        "approvers: [bob]\n"
        "required_approvals: 0\n"
        "request_ttl_minutes: -5\n"
        "channels: [general]\n"
        "colour: blue\n"
    )
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, text))
    problems = err.value.problems
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    for key in ("approvers", "required_approvals", "request_ttl_minutes", "channels", "colour"):
        assert key in joined
    assert "bob" in joined and "general" in joined


@pytest.mark.parametrize(
    "text",
    [
        "approvers: [u123]\n",
        "approvers: [C123]\n",
        "requesters: ['<@U123>']\n",
        "channels: [U123]\n",
        "approvers: ['U123 ']\n",
        "rules:\n  - tables: ['x']\n    approvers: [X1]\n",
    ],
)
def test_bad_ids_are_rejected(tmp_path: Path, text: str) -> None:
    with pytest.raises(PolicyError):
        load_policy(write(tmp_path, text))


def test_unsatisfiable_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, "approvers: [U2]\nrequired_approvals: 2\n"))
    assert "2 approvals required" in str(err.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, "approvers: [U2\n"))
    assert "not valid YAML" in err.value.problems[0]


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, "- U2\n- U3\n"))
    assert "mapping" in err.value.problems[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(tmp_path / "nope.yaml")
    assert "cannot read policy file" in err.value.problems[0]
    assert "nope.yaml" in err.value.problems[0]


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file_means_defaults(tmp_path: Path, text: str) -> None:
    assert load_policy(write(tmp_path, text)) == Policy()


def test_no_path_means_defaults() -> None:
    assert load_policy(None) == Policy()
    assert load_policy("") == Policy()


# -- target_pattern and kms_keys ------------------------------------------------------------
def test_target_pattern_absent_allows_any_name() -> None:
    assert Policy().target_pattern == "*"
    assert Policy().target_allowed("anything-at-all").allowed


def test_target_pattern_limits_the_new_table_name_and_the_refusal_names_it() -> None:
    policy = Policy(target_pattern="restored-*")
    assert policy.target_allowed("restored-orders").allowed
    refused = policy.target_allowed("orders-copy")
    assert not refused.allowed
    assert "`restored-*`" in refused.reason and "target_pattern" in refused.reason
    assert not policy.target_allowed("Restored-orders").allowed  # case-sensitive, like AWS


def test_suggested_target_matches_the_pattern_when_one_is_easy_to_make() -> None:
    assert Policy().suggest_target("orders-20261129-1200") == "orders-20261129-1200"
    policy = Policy(target_pattern="restored-*")
    assert policy.suggest_target("orders-20261129-1200") == "restored-orders-20261129-1200"
    assert policy.suggest_target("restored-x") == "restored-x"
    long = policy.suggest_target("o" * 255)
    assert len(long) == 255 and policy.target_allowed(long).allowed
    both = Policy(target_pattern="pitr-*-copy").suggest_target("orders")
    assert both == "pitr-orders-copy"
    # No easy way to a match: the name stays, and the preflight will say why.
    assert Policy(target_pattern="x?-*-*").suggest_target("orders") == "orders"


@pytest.mark.parametrize("pattern", ["restored-[ab]*", "a b*", "", "x/*"])
def test_target_pattern_must_be_a_table_name_glob(tmp_path, pattern) -> None:
    path = tmp_path / "p.yml"
    path.write_text(f"target_pattern: {pattern!r}\n")
    with pytest.raises(PolicyError, match="target_pattern"):
        load_policy(path)


def test_no_kms_keys_means_no_customer_managed_key() -> None:
    policy = Policy()
    refused = policy.kms_key_allowed("alias/my-key")
    assert not refused.allowed and "kms_keys" in refused.reason
    assert not policy.kms_key_allowed("1234abcd-12ab-34cd-56ef-1234567890ab").allowed
    # DynamoDB's AWS managed key is not a customer key.
    assert policy.kms_key_allowed("alias/aws/dynamodb").allowed
    assert policy.kms_key_allowed("arn:aws:kms:eu-west-1:123456789012:alias/aws/dynamodb").allowed


def test_kms_keys_allow_listed_keys_in_any_of_their_spellings_and_nothing_else() -> None:
    key_arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    alias_arn = "arn:aws:kms:eu-west-1:123456789012:alias/restores"
    policy = Policy(kms_keys=[key_arn, alias_arn, "alias/pitr"])
    for key in (key_arn, "1234abcd-12ab-34cd-56ef-1234567890ab", alias_arn, "alias/restores"):
        assert policy.kms_key_allowed(key).allowed, key
    assert policy.kms_key_allowed("alias/pitr").allowed
    for key in (
        "alias/other",
        "arn:aws:kms:eu-west-1:999999999999:alias/pitr",  # same alias name, another account
        "arn:aws:kms:eu-west-1:123456789012:key/ffffffff-12ab-34cd-56ef-1234567890ab",
        "alias/restores-too",
    ):
        refused = policy.kms_key_allowed(key)
        assert not refused.allowed, key
        assert key in refused.reason and "kms_keys" in refused.reason


def test_kms_keys_must_be_key_references(tmp_path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("kms_keys: ['alias/ok', 'not a key']\n")
    with pytest.raises(PolicyError, match="not a key"):
        load_policy(path)


def test_may_see_only_who_may_request_or_approve_in_allowed_channels() -> None:
    from bot.policy import Rule

    policy = Policy(
        tables=["Music*", "Secret*"],
        channels=["C1"],
        rules=[Rule(tables=["Secret*"], requesters=["U1"], approvers=["SDBA"])],
    )
    members = groups({"SDBA": {"U7"}})
    assert policy.may_see("U3", "C1", "MusicCollection", members).allowed  # defaults: anyone
    assert not policy.may_see("U3", "C9", "MusicCollection", members).allowed
    assert policy.may_see("U3", None, "MusicCollection", members).allowed  # Home: no channel
    assert not policy.may_see("U3", None, "Orders", members).allowed  # outside `tables`
    assert policy.may_see("U1", "C1", "SecretLedger", members).allowed  # requester
    assert policy.may_see("U7", "C1", "SecretLedger", members).allowed  # approver by group
    refused = policy.may_see("U3", "C1", "SecretLedger", members)
    assert not refused.allowed and "neither request nor approve" in refused.reason
    assert not policy.may_see("U7", "C1", "SecretLedger", nobody).allowed  # group unknown
