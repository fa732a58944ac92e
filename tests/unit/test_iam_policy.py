"""The local IAM evaluator, operator by operator, on the examples of AWS's IAM
User Guide ("Condition operators", "Policy variables", "Multivalued context
keys") and DynamoDB's fine-grained access control guide — plus the policies
of template.yaml that depend on each rule."""

from __future__ import annotations

import pytest

from local.iam.policy import Request, conditions_hold, evaluate
from local.template import load_template

V = "2012-10-17"


def allowed(statement: dict, action: str = "s3:ListBucket", resource: str = "arn:aws:s3:::example_bucket",
            version: str = V, **context) -> bool:
    return evaluate([{"Version": version, "Statement": [statement]}], Request(action, resource, context)).allowed


def holds(condition: dict, **context) -> bool:
    return conditions_hold(condition, context, variables=True)


# --------------------------------------------------------------------------- effect, action, resource


def test_allow_and_implicit_deny():
    statement = {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:aws:dynamodb:*:*:table/T"}
    assert allowed(statement, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/T")
    assert not allowed(statement, "dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/T")
    assert not allowed(statement, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/Other")


def test_an_explicit_deny_wins_over_any_allow():
    policies = [{"Version": V, "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]},
                {"Version": V, "Statement": [{"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"}]}]
    decision = evaluate(policies, Request("dynamodb:DeleteItem", "arn:aws:dynamodb:us-east-1:1:table/T"))
    assert not decision.allowed and decision.explicit_deny
    assert evaluate(policies, Request("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/T")).allowed


def test_actions_match_without_case_and_with_wildcards_not_action_excludes():
    assert allowed({"Effect": "Allow", "Action": "IAM:*AccessKey*", "Resource": "*"}, "iam:CreateAccessKey")
    assert allowed({"Effect": "Allow", "Action": "states:Send?ask*", "Resource": "*"}, "states:SendTaskSuccess")
    assert not allowed({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}, "s3:GetObject")
    assert allowed({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}, "sqs:SendMessage")


def test_resource_wildcards_match_within_each_arn_component():
    statement = {"Effect": "Allow", "Action": "apigateway:POST",
                 "Resource": "arn:aws:apigateway:us-east-1::/usageplans/*/keys"}
    assert allowed(statement, "apigateway:POST", "arn:aws:apigateway:us-east-1::/usageplans/abc123/keys")
    assert not allowed(statement, "apigateway:POST", "arn:aws:apigateway:us-east-1::/apikeys")
    assert not allowed(statement, "apigateway:POST", "arn:aws:apigateway:eu-west-1::/usageplans/abc/keys")
    # a NotResource statement applies to everything but what it names
    assert allowed({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}, "s3:GetObject",
                   "arn:aws:s3:::public/a")
    assert not allowed({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"},
                       "s3:GetObject", "arn:aws:s3:::secret/a")


# --------------------------------------------------------------------------- string operators


def test_string_equals_principal_tag_example():
    # "…the principal making the request must be tagged with the iamuser-admin job category"
    statement = {"Effect": "Allow", "Action": "iam:*AccessKey*", "Resource": "arn:aws:iam::account-id:user/*",
                 "Condition": {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}}
    resource = "arn:aws:iam::account-id:user/David"
    assert allowed(statement, "iam:CreateAccessKey", resource, **{"aws:PrincipalTag/job-category": "iamuser-admin"})
    assert not allowed(statement, "iam:CreateAccessKey", resource, **{"aws:PrincipalTag/job-category": "dev"})
    # "If a user without the tag attempts to view or edit an access key, the condition returns false"
    assert not allowed(statement, "iam:CreateAccessKey", resource)
    # string comparison is case-sensitive; context key names are not
    assert not allowed(statement, "iam:CreateAccessKey", resource, **{"aws:PrincipalTag/job-category": "IAMUSER-ADMIN"})
    assert allowed(statement, "iam:CreateAccessKey", resource, **{"AWS:principaltag/job-category": "iamuser-admin"})


def test_string_not_equals_and_ignore_case():
    assert holds({"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}},
                 **{"aws:RequestedRegion": "ap-south-1"})
    assert not holds({"StringNotEquals": {"aws:RequestedRegion": ["us-east-1"]}}, **{"aws:RequestedRegion": "us-east-1"})
    assert holds({"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}})  # key absent: a negated operator holds
    assert holds({"StringEqualsIgnoreCase": {"aws:PrincipalTag/team": "SRE"}}, **{"aws:PrincipalTag/team": "sre"})
    assert not holds({"StringNotEqualsIgnoreCase": {"aws:PrincipalTag/team": "SRE"}},
                     **{"aws:PrincipalTag/team": "sre"})


def test_string_like_home_directory_example_with_a_policy_variable():
    # The S3 "home directory" example: s3:prefix may be "", "home/" or "home/${aws:username}/".
    statement = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::BUCKET-NAME",
                 "Condition": {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/"]}}}
    bucket = "arn:aws:s3:::BUCKET-NAME"
    assert allowed(statement, "s3:ListBucket", bucket, **{"aws:username": "David", "s3:prefix": "home/David/"})
    assert allowed(statement, "s3:ListBucket", bucket, **{"aws:username": "David", "s3:prefix": ""})
    assert not allowed(statement, "s3:ListBucket", bucket, **{"aws:username": "David", "s3:prefix": "home/Adele/"})
    objects = {"Effect": "Allow", "Action": "s3:*",
               "Resource": ["arn:aws:s3:::BUCKET-NAME/home/${aws:username}", "arn:aws:s3:::BUCKET-NAME/home/${aws:username}/*"]}
    assert allowed(objects, "s3:GetObject", "arn:aws:s3:::BUCKET-NAME/home/David/notes.txt", **{"aws:username": "David"})
    assert not allowed(objects, "s3:GetObject", "arn:aws:s3:::BUCKET-NAME/home/Adele/notes.txt",
                       **{"aws:username": "David"})


def test_string_like_wildcards_and_not_like():
    assert holds({"StringLike": {"aws:RequestTag/workspace_id": "?*"}}, **{"aws:RequestTag/workspace_id": "01H"})
    assert not holds({"StringLike": {"aws:RequestTag/workspace_id": "?*"}}, **{"aws:RequestTag/workspace_id": ""})
    assert not holds({"StringLike": {"aws:RequestTag/workspace_id": "?*"}})  # no tag at all
    assert holds({"StringNotLike": {"s3:prefix": "private/*"}}, **{"s3:prefix": "public/a"})
    assert not holds({"StringNotLike": {"s3:prefix": "private/*"}}, **{"s3:prefix": "private/a"})


def test_policy_variables():
    # no value for the variable: the element it is in matches nothing
    statement = {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"}
    assert not allowed(statement, "s3:GetObject", "arn:aws:s3:::b/David/x")
    # a default value, and the special characters ${*} ${?} ${$} are literal
    assert holds({"StringEquals": {"k": "${aws:PrincipalTag/team, 'none'}"}}, k="none")
    assert holds({"StringLike": {"k": "a${*}b"}}, k="a*b")
    assert not holds({"StringLike": {"k": "a${*}b"}}, k="axxb")
    # a variable's value is literal, never a wildcard
    assert not holds({"StringLike": {"k": "WS#${aws:PrincipalTag/w}"}}, k="WS#anything", **{"aws:PrincipalTag/w": "*"})
    # Version 2008-10-17 (or none) has no variables: the text is literal
    old = {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}"}
    assert not allowed(old, "s3:GetObject", "arn:aws:s3:::b/David", version="2008-10-17", **{"aws:username": "David"})
    assert allowed(old, "s3:GetObject", "arn:aws:s3:::b/${aws:username}", version="2008-10-17")


# --------------------------------------------------------------------------- numeric, bool, null


def test_numeric_max_keys_example():
    condition = {"NumericLessThanEquals": {"s3:max-keys": "10"}}
    assert holds(condition, **{"s3:max-keys": "10"})
    assert holds(condition, **{"s3:max-keys": "3"})
    assert not holds(condition, **{"s3:max-keys": "11"})
    assert not holds(condition)  # key absent
    assert holds({"NumericNotEquals": {"n": "5"}}, n="6")
    assert holds({"NumericGreaterThan": {"n": "5"}}, n="5.5")
    assert not holds({"NumericEquals": {"n": "5"}}, n="five")


def test_bool_secure_transport_deny_example():
    deny = {"Sid": "BooleanExample", "Action": "s3:*", "Effect": "Deny",
            "Resource": ["arn:aws:s3:::DOC-EXAMPLE-BUCKET", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    policies = [{"Version": V, "Statement": [allow, deny]}]
    over_http = evaluate(policies, Request("s3:GetObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                                           {"aws:SecureTransport": "false"}))
    assert not over_http.allowed and over_http.explicit_deny
    assert evaluate(policies, Request("s3:GetObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                                      {"aws:SecureTransport": "true"})).allowed
    assert holds({"Bool": {"aws:MultiFactorAuthPresent": True}}, **{"aws:MultiFactorAuthPresent": "true"})


def test_null_token_issue_time_example():
    # "the user must not be using temporary credentials (the key must not exist)"
    condition = {"Null": {"aws:TokenIssueTime": "true"}}
    assert holds(condition)
    assert not holds(condition, **{"aws:TokenIssueTime": "2026-01-01T00:00:00Z"})
    assert holds({"Null": {"dynamodb:LeadingKeys": "false"}}, **{"dynamodb:LeadingKeys": ["WS#1"]})
    assert not holds({"Null": {"dynamodb:LeadingKeys": "false"}}, **{"dynamodb:LeadingKeys": []})


# --------------------------------------------------------------------------- ARN operators


def test_arn_like_matches_component_by_component_unlike_string_like():
    # The guide's example: StringLike matches, ArnLike does not (its * stays within the region component).
    pattern = "arn:aws:someservice:*:111122223333:finance/*"
    value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"
    assert holds({"StringLike": {"aws:SourceArn": pattern}}, **{"aws:SourceArn": value})
    assert not holds({"ArnLike": {"aws:SourceArn": pattern}}, **{"aws:SourceArn": value})
    assert holds({"ArnLike": {"aws:SourceArn": pattern}},
                 **{"aws:SourceArn": "arn:aws:someservice:us-east-2:111122223333:finance/document.txt"})


def test_arn_equals_source_arn_example_and_negations():
    topic = "arn:aws:sns:us-east-1:123456789012:TOPIC-ID"
    assert holds({"ArnEquals": {"aws:SourceArn": topic}}, **{"aws:SourceArn": topic})
    assert not holds({"ArnEquals": {"aws:SourceArn": topic}}, **{"aws:SourceArn": topic + "2"})
    # "If an IAM user attempts to perform this operation directly, the condition returns false"
    assert not holds({"ArnEquals": {"aws:SourceArn": topic}})
    assert holds({"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:*:other"}}, **{"aws:SourceArn": topic})
    assert not holds({"ArnNotEquals": {"aws:SourceArn": topic}}, **{"aws:SourceArn": topic})


# --------------------------------------------------------------------------- IfExists, set operators


def test_if_exists_instance_type_example():
    condition = {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}
    assert holds(condition)  # a resource without the key: the condition holds
    assert holds(condition, **{"ec2:InstanceType": "t2.micro"})
    assert not holds(condition, **{"ec2:InstanceType": "c5.large"})


def test_for_all_values_tag_keys_example():
    condition = {"ForAllValues:StringLike": {"aws:TagKeys": "Created*"}}
    assert holds(condition, **{"aws:TagKeys": ["CreatedBy", "CreatedAt"]})
    assert not holds(condition, **{"aws:TagKeys": ["CreatedBy", "Owner"]})
    # "The ForAllValues set operator also returns true if there are no context keys in the request."
    assert holds(condition)
    assert holds(condition, **{"aws:TagKeys": []})


def test_for_any_value():
    condition = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}
    assert holds(condition, **{"aws:TagKeys": ["owner", "environment"]})
    assert not holds(condition, **{"aws:TagKeys": ["owner"]})
    assert not holds(condition)  # absent: false
    assert not holds({"ForAnyValue:StringNotLike": {"aws:TagKeys": "env*"}}, **{"aws:TagKeys": ["environment"]})


def test_a_multivalued_key_needs_a_set_operator():
    assert not holds({"StringEquals": {"aws:TagKeys": "a"}}, **{"aws:TagKeys": ["a", "b"]})


def test_several_keys_and_blocks_must_all_hold():
    condition = {"StringEquals": {"a": "1", "b": "2"}, "StringLike": {"c": "x*"}}
    assert holds(condition, a="1", b="2", c="xy")
    assert not holds(condition, a="1", b="3", c="xy")
    assert not holds(condition, a="1", b="2", c="yy")


def test_an_unknown_operator_never_allows():
    assert not holds({"DateGreaterThan": {"aws:TokenIssueTime": "2020-01-01T00:00:01Z"}},
                     **{"aws:TokenIssueTime": "2026-01-01T00:00:00Z"})
    assert not holds({"StringEqualsEverything": {"k": "v"}}, k="v")


# --------------------------------------------------------------------------- DynamoDB and the template's policies


def test_dynamodb_leading_keys_example():
    # DynamoDB's guide: users reach only items whose partition key is their own id.
    statement = {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"],
                 "Resource": ["arn:aws:dynamodb:us-west-2:123456789012:table/GameScores"],
                 "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${www.amazon.com:user_id}"]}}}
    table = "arn:aws:dynamodb:us-west-2:123456789012:table/GameScores"
    me = {"www.amazon.com:user_id": "amzn1.account.A"}
    assert allowed(statement, "dynamodb:GetItem", table, **me, **{"dynamodb:LeadingKeys": ["amzn1.account.A"]})
    assert not allowed(statement, "dynamodb:GetItem", table, **me, **{"dynamodb:LeadingKeys": ["amzn1.account.B"]})
    # a Scan has no leading keys, so ForAllValues holds: the guide leaves Scan out of such policies for this reason
    assert allowed({**statement, "Action": "dynamodb:Scan"}, "dynamodb:Scan", table, **me)


def test_dynamodb_attributes_example():
    # Example 2 of the guide: only UserId and TopScore may be read or written.
    condition = {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["UserId", "TopScore"]},
                 "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES",
                                          "dynamodb:ReturnValues": ["NONE", "UPDATED_OLD", "UPDATED_NEW"]}}
    assert holds(condition, **{"dynamodb:Attributes": ["UserId", "TopScore"], "dynamodb:ReturnValues": "NONE"})
    assert not holds(condition, **{"dynamodb:Attributes": ["UserId", "Wins"], "dynamodb:ReturnValues": "NONE"})
    assert not holds(condition, **{"dynamodb:Attributes": ["UserId"], "dynamodb:ReturnValues": "ALL_NEW"})
    assert not holds(condition, **{"dynamodb:Attributes": ["UserId"], "dynamodb:Select": "ALL_ATTRIBUTES"})


def _tenant_policy() -> dict:
    role = load_template()["Resources"]["TenantDataRole"]["Properties"]
    policy = dict(role["Policies"][0]["PolicyDocument"])
    policy["Statement"] = [{**s, "Resource": "*"} for s in policy["Statement"]]  # resources are roles.py's business
    return policy


@pytest.mark.parametrize(("partition_key", "expected"), [
    ("WS#01AAAAAAAAAAAAAAAAAAAAAAAA", True),
    ("WS#01AAAAAAAAAAAAAAAAAAAAAAAA#RUN#01BBBBBBBBBBBBBBBBBBBBBBBB", True),
    ("WS#01CCCCCCCCCCCCCCCCCCCCCCCC", False),
    ("WS#01AAAAAAAAAAAAAAAAAAAAAAAAX", False),  # a longer id sharing the prefix
    ("USER#01AAAAAAAAAAAAAAAAAAAAAAAA", False),
    ("APIKEY#abc", False),
])
def test_the_tenant_role_policy_admits_only_its_tagged_workspace(partition_key, expected):
    tag = {"aws:PrincipalTag/workspace_id": "01AAAAAAAAAAAAAAAAAAAAAAAA"}
    request = Request("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/t",
                      {**tag, "dynamodb:LeadingKeys": [partition_key]})
    assert evaluate([_tenant_policy()], request).allowed is expected


def test_the_tenant_role_without_its_tag_reaches_nothing():
    request = Request("dynamodb:GetItem", "*", {"dynamodb:LeadingKeys": ["WS#"]})
    assert not evaluate([_tenant_policy()], request).allowed


def test_trust_policy_principals():
    trust = {"Version": V, "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                                          "Action": "sts:AssumeRole",
                                          "Condition": {"StringLike": {"aws:RequestTag/workspace_id": "?*"}}}]}
    role = "arn:aws:iam::123456789012:role/agenthq-AgentsFunctionRole"
    tagged = {"aws:RequestTag/workspace_id": "01A"}
    assert evaluate([trust], Request("sts:AssumeRole", "arn:aws:iam::123456789012:role/t", tagged, role)).allowed
    assert not evaluate([trust], Request("sts:AssumeRole", "arn:aws:iam::123456789012:role/t", {}, role)).allowed
    other_account = "arn:aws:iam::999999999999:role/intruder"
    assert not evaluate([trust], Request("sts:AssumeRole", "arn:aws:iam::123456789012:role/t", tagged,
                                         other_account)).allowed
