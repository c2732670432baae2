"""The Terraform stack applied and destroyed on moto_server (127.0.0.1).

A copy of terraform/ gets a generated provider override file that points every
service at the emulator (the real stack never names an endpoint). The test:

- plans with settings the variables' validations and the resources'
  preconditions must refuse (a transform buffer that can exceed Lambda's 6 MB
  response, a staged queue that outlives its DLQ, ...) and checks each refusal,
  then plans accepted edge values and checks what they configure;
- plans with the dev variables and the zips `make build` wrote, and checks the
  plan's IAM statements for wildcard actions (Allow statements; KMS key policies
  may use AWS's documented forms only);
- applies, then checks what was created against what the parquet-writer and the
  schema source expect: prefixes, processor parameters, the TLS-only bucket policy,
  the lifecycle rules (no rule can expire a staged object the writer has not
  written), queues, the alarm topic's customer-managed key;
- checks that a second plan is empty;
- runs both built Lambdas (from their zips) in cargo-lambda's Runtime API
  emulator against the deployed stack on moto, with the environment Terraform gave
  them: the transform on the fixture request, the writer on staged objects through
  their real S3 notifications. It checks the writer's partial batch failure and
  written-object tag, and that every alarm and dashboard metric is one something
  really emits: AWS metrics against a table of what each service publishes, the
  eventlake namespace against the EMF documents the Lambdas printed;
- with --e2e, runs e2e_test.py's pipeline test on the fresh stack first (one
  apply for both: `make test-infra` does this; `make e2e` applies its own);
- destroys, and checks that nothing is left in the state.

usage: stack_test.py REPO_ROOT LAMBDA_ZIP_DIR EVENTLAKE_BINARY MOTO_SERVER [--e2e]

cargo-lambda: $CARGO_LAMBDA, else next to MOTO_SERVER (the Makefile's venv), else
the PATH. If a Lambda zip is missing, the stack is applied with a placeholder and
the checks that run the Lambdas are skipped with a message (`make test-infra`
builds the zips first, so they never are there).
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time

import boto3
import botocore.exceptions

import e2e_test
from emulators import (
    ACCESS, LAMBDAS, SCHEDULED_EVENT, WRITTEN_TAG, Emulated, Stack, StagingOpen, cargo_lambda_path, client, gzip_lines,
    notified_keys, sqs_event, staged_notifications, start_moto, tags,
)
def statements(policy):
    document = json.loads(policy) if isinstance(policy, str) else policy
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value):
    return [value] if isinstance(value, str) else list(value or [])


def action_wildcards(actions):
    return [a for a in as_list(actions) if "*" in a or "?" in a]


# --- Settings Terraform must refuse, and what accepted ones configure ----------

# Each value alone is refused by its variable's validation, with this message.
REFUSED_VALUES = {
    "transform_buffer_mb=2": "transform_buffer_mb must be between 0.2 and 1",
    "transform_buffer_mb=0.1": "transform_buffer_mb must be between 0.2 and 1",
    "staged_queue_retention_days=14": "staged_queue_retention_days must be a whole number between 1 and 13",
    "writer_timeout_seconds=901": "writer_timeout_seconds must be between 1 and 900",
    "writer_batch_size=10001": "writer_batch_size must be a whole number between 1 and 10000",
    "writer_seconds_per_object=0": "writer_seconds_per_object must be a whole number",
    "partition_count_alarm=500": "partition_count_alarm must be between 1 and 499",
    "created_at_max_age_days=0": "created_at_max_age_days must be null or a whole number",
    "created_at_max_future_days=0.5": "created_at_max_future_days must be null or a whole number",
    "staging_expiration_days=0": "staging_expiration_days must be a whole number",
    "alarm_email=ops": "alarm_email must be null or an email address",
}

# Values each valid alone, refused together by a resource's precondition.
REFUSED_COMBINATIONS = [
    (["writer_timeout_seconds=50", "writer_seconds_per_object=30"],
     "writer_timeout_seconds must be at least twice writer_seconds_per_object"),
    (["staged_queue_retention_days=1", "staged_queue_age_alarm_seconds=86400"],
     "staged_queue_age_alarm_seconds must be shorter than staged_queue_retention_days"),
    (["writer_memory_mb=600", "firehose_buffer_mb=128"],
     "writer_memory_mb must be at least firehose_buffer_mb + 512"),
    (["environment=prod"], "alarm_email must be set in prod"),
]


def plan_errors(stack, values):
    """The error diagnostics of a plan with `values` (which must fail)."""
    result = stack.terraform("plan", "-json", *stack.vars, *[f"-var={v}" for v in values], check=False)
    assert result.returncode != 0, f"a plan with {values} succeeded"
    errors = []
    for line in result.stdout.splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        diagnostic = message.get("diagnostic") or {}
        if diagnostic.get("severity") == "error":
            errors.append(" ".join(f"{diagnostic.get('summary', '')} {diagnostic.get('detail', '')}".split()))
    assert errors, f"a plan with {values} failed without error diagnostics:\n{result.stdout}\n{result.stderr}"
    return errors


def check_refused_settings(stack):
    """Each refused value is refused with its own message and nothing else is:
    the values go into as few plans as have one value per variable; the
    combinations into one plan."""
    pending = list(REFUSED_VALUES.items())
    while pending:
        batch, variables = [], set()
        for value, expected in pending:
            if value.split("=")[0] not in variables:
                variables.add(value.split("=")[0])
                batch.append((value, expected))
        pending = [p for p in pending if p not in batch]
        errors = plan_errors(stack, [value for value, _ in batch])
        for value, expected in batch:
            assert any(expected in e for e in errors), f"-var {value}: expected {expected!r}, got {errors}"
        assert len(errors) == len(batch), errors
    errors = plan_errors(stack, [value for values, _ in REFUSED_COMBINATIONS for value in values])
    for values, expected in REFUSED_COMBINATIONS:
        assert any(expected in e for e in errors), f"-var {values}: expected {expected!r}, got {errors}"
    assert len(errors) == len(REFUSED_COMBINATIONS), errors


def planned(plan, address):
    return next(r["values"] for r in plan["planned_values"]["root_module"]["resources"] if r["address"] == address)


def processor_parameters(stream):
    """The transform processor's parameters, name to value (None while unknown, in a plan)."""
    return e2e_test.processor_parameters(stream["extended_s3_configuration"][0], "Lambda")


def check_accepted_settings(stack):
    """A smaller transform buffer reaches the processor; a null created_at bound
    leaves its variable out of the transform's environment."""
    # null cannot be given with -var (it would be the string "null").
    with open(os.path.join(stack.dir, "edge.tfvars"), "w") as f:
        f.write("transform_buffer_mb     = 0.5\ncreated_at_max_age_days = null\n")
    plan = stack.plan_json("edge.bin", "-var-file=edge.tfvars")
    parameters = processor_parameters(planned(plan, "aws_kinesis_firehose_delivery_stream.events"))
    assert parameters.get("BufferSizeInMBs") == "0.5", parameters
    env = planned(plan, "aws_lambda_function.transform")["environment"][0]["variables"]
    assert "CREATED_AT_MAX_AGE_DAYS" not in env and env.get("CREATED_AT_MAX_FUTURE_DAYS") == "1", env


# --- IAM: no wildcard actions in what is allowed --------------------------------

def key_policy_documents(plan):
    """Addresses of the policy documents used as KMS key policies."""
    documents = set()
    for resource in plan["configuration"]["root_module"]["resources"]:
        if resource["type"] == "aws_kms_key":
            documents.update(r for r in resource["expressions"]["policy"].get("references", [])
                             if r.startswith("data.aws_iam_policy_document.") and not r.endswith(".json"))
    return documents


# The wildcard actions a key policy may have: AWS's default statement (the
# account's root administers the key through IAM) and the data-key actions
# AWS documents for services publishing to an encrypted topic.
KEY_POLICY_WILDCARDS = {"kms:*", "kms:GenerateDataKey*"}


def check_plan_iam(plan):
    """No Allow statement in the configuration's policy documents has a wildcard
    action, except AWS's documented forms in KMS key policies. A Deny may use
    them (the TLS-only bucket policy denies s3:*)."""
    key_policies = key_policy_documents(plan)
    assert key_policies, "no KMS key policy document found in the plan"
    bad = []
    for resource in plan["configuration"]["root_module"]["resources"]:
        if resource["type"] != "aws_iam_policy_document":
            continue
        for statement in resource["expressions"].get("statement", []):
            actions = statement.get("actions", {}).get("constant_value", [])
            assert actions, f"{resource['address']}: actions must be literal lists"
            assert "not_actions" not in statement, resource["address"]
            if statement.get("effect", {}).get("constant_value", "Allow") != "Allow":
                continue
            wild = action_wildcards(actions)
            if resource["address"] in key_policies:
                wild = [a for a in wild if a not in KEY_POLICY_WILDCARDS]
            if wild:
                bad.append((resource["address"], wild))
    assert not bad, f"wildcard IAM actions in the plan: {bad}"


def check_key_policy_statement(address, statement, account):
    """A key policy's wildcard is kms:* for the account root alone, or
    kms:GenerateDataKey* for a service principal limited to this account."""
    wild = set(action_wildcards(statement.get("Action")))
    assert wild <= KEY_POLICY_WILDCARDS, f"{address}: wildcard actions {wild}"
    principal = statement.get("Principal") or {}
    if "kms:*" in wild:
        assert principal == {"AWS": f"arn:aws:iam::{account}:root"}, f"{address}: kms:* for {principal}"
    elif wild:
        assert set(principal) == {"Service"}, f"{address}: {wild} for {principal}"
        condition = statement.get("Condition", {}).get("StringEquals", {})
        assert as_list(condition.get("aws:SourceAccount")) == [account], f"{address}: {statement}"


def check_applied_iam(state, account):
    """Every policy the apply created: no NotAction, no wildcard action in an
    Allow statement but the key policy forms."""
    checked = 0
    for resource in state["values"]["root_module"]["resources"]:
        policy = resource["values"].get("policy") or resource["values"].get("assume_role_policy")
        if resource["mode"] != "managed" or not policy:
            continue
        for statement in statements(policy):
            assert "NotAction" not in statement, resource["address"]
            if statement.get("Effect") != "Allow":
                continue
            if resource["type"] == "aws_kms_key":
                check_key_policy_statement(resource["address"], statement, account)
            else:
                wild = action_wildcards(statement.get("Action"))
                assert not wild, f"{resource['address']}: wildcard actions {wild}"
            checked += 1
    assert checked >= 10, checked


# Every AWS operation the Rust code calls, the IAM actions it needs, and the
# deployed policies of the code that calls it (the role policies of the
# parquet-writer and the compactor, the producer policy for `eventlake send`).
# check_calls_allowed ties the three: an operation in src/ that this table does
# not name fails, as does a policy that lacks an action of an operation it calls.
# (Which resources each may touch is judged by moto while the e2e test runs each
# Lambda as its role.)
# "operator": the eventlake commands on the deployed lake (compact, replay,
# ingest --database, catalog repair), with the stack's operator policy.
CALLS = {
    "get_object": ({"s3:GetObject"}, {"writer", "compactor", "operator"}),
    "copy_object": ({"s3:GetObject", "s3:PutObject"}, {"writer", "compactor", "operator"}),
    "put_object": ({"s3:PutObject"}, {"writer", "compactor", "operator"}),
    "create_multipart_upload": ({"s3:PutObject"}, {"writer", "compactor", "operator"}),
    "upload_part": ({"s3:PutObject"}, {"writer", "compactor", "operator"}),
    "complete_multipart_upload": ({"s3:PutObject"}, {"writer", "compactor", "operator"}),
    "abort_multipart_upload": ({"s3:AbortMultipartUpload"}, {"writer", "compactor", "operator"}),
    "delete_object": ({"s3:DeleteObject"}, {"writer", "compactor", "operator"}),
    "put_object_tagging": ({"s3:PutObjectTagging"}, {"writer"}),
    "list_objects_v2": ({"s3:ListBucket"}, {"compactor", "operator"}),
    "get_table": ({"glue:GetTable"}, {"writer", "operator"}),
    "batch_create_partition": ({"glue:BatchCreatePartition"}, {"writer", "operator"}),
    # settle (writer) and an unswitched compaction (compactor): where a partition is now.
    "batch_get_partition": ({"glue:BatchGetPartition"}, {"writer", "compactor", "operator"}),
    "get_partition": ({"glue:GetPartition"}, {"compactor", "operator"}),
    "get_partitions": ({"glue:GetPartitions"}, {"compactor", "operator"}),
    "update_partition": ({"glue:UpdatePartition"}, {"compactor", "operator"}),
    "put_records": ({"kinesis:PutRecords"}, {"producer"}),
    # The typed views (src/views/publish.rs via Catalog::put_view).
    "create_table": ({"glue:CreateTable"}, {"compactor", "operator"}),
    "update_table": ({"glue:UpdateTable"}, {"compactor", "operator"}),
    # eventlake tail (src/aws/kinesis.rs, src/aws/dynamodb.rs).
    "list_shards": ({"kinesis:ListShards"}, {"consumer"}),
    "get_shard_iterator": ({"kinesis:GetShardIterator"}, {"consumer"}),
    "get_records": ({"kinesis:GetRecords"}, {"consumer"}),
    "query": ({"dynamodb:Query"}, {"consumer"}),
    "get_item": ({"dynamodb:GetItem"}, {"consumer"}),
    "put_item": ({"dynamodb:PutItem"}, {"consumer"}),
    "delete_item": ({"dynamodb:DeleteItem"}, {"consumer"}),
}
# The policies CALLS names, by resource address in the applied state.
CALLERS = {"writer": "aws_iam_role_policy.writer", "compactor": "aws_iam_role_policy.compactor",
           "producer": "aws_iam_policy.producer", "operator": "aws_iam_policy.operator",
           "consumer": "aws_iam_policy.consumer"}


def sdk_operations_called(repo):
    """The AWS SDK operations src/ calls: method calls `.name()` whose name is an
    operation of S3, Glue, Kinesis or DynamoDB (from botocore's service models)."""
    def snake(name):
        return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()

    operations = set()
    for service in ("s3", "glue", "kinesis", "dynamodb"):
        model = boto3.session.Session().client(service, region_name="us-east-1").meta.service_model
        operations |= {snake(name) for name in model.operation_names}
    called = set()
    for root, _, files in os.walk(os.path.join(repo, "src")):
        for name in files:
            if name.endswith(".rs"):
                with open(os.path.join(root, name)) as f:
                    called |= set(re.findall(r"\.([a-z][a-z0-9_]*)\(\)", f.read())) & operations
    return called


def allowed_actions(state):
    """Per CALLS name, the actions its policy allows (on any resource)."""
    policies = {r["address"]: r["values"]["policy"] for r in state["values"]["root_module"]["resources"]
                if r["mode"] == "managed" and r["address"] in CALLERS.values()}
    return {caller: {action for statement in statements(policies[address]) if statement.get("Effect") == "Allow"
                     for action in as_list(statement.get("Action"))}
            for caller, address in CALLERS.items()}


def calls_not_allowed(called, allowed):
    """What the code calls that the table does not name, or a policy lacks."""
    problems = [f"src/ calls {op}: add it to CALLS with its actions and callers" for op in sorted(called - set(CALLS))]
    problems += [f"CALLS names {op}, which src/ no longer calls" for op in sorted(set(CALLS) - called)]
    for op in sorted(called & set(CALLS)):
        actions, callers = CALLS[op]
        for caller in sorted(callers):
            missing = actions - allowed[caller]
            if missing:
                problems.append(f"{CALLERS[caller]} lacks {sorted(missing)}, which {op} needs")
    return problems


# Limits of AWS's that the code holds as constants, each against the service
# model botocore ships: (file, pattern of the constant, service, shape, what).
SERVICE_LIMITS = [
    ("src/aws/kinesis.rs", r"MAX_RECORDS_PER_READ: i32 = ([\d_]+);", "kinesis", "GetRecordsInputLimit", ("max",)),
    ("src/tail/mod.rs", r"TABLE_NAME_BYTES: [^=]+= ([\d_]+)\.\.=([\d_]+);", "dynamodb", "TableName", ("min", "max")),
]


def check_service_limits(repo):
    """Each constant in SERVICE_LIMITS equals the bound the service model gives."""
    problems = []
    for path, pattern, service, shape, bounds in SERVICE_LIMITS:
        with open(os.path.join(repo, path)) as f:
            found = re.search(pattern, f.read())
        assert found, f"{path}: no constant matching {pattern}"
        ours = [int(value.replace("_", "")) for value in found.groups()]
        model = boto3.session.Session().client(service, region_name="us-east-1").meta.service_model
        theirs = [model.shape_for(shape).metadata[bound] for bound in bounds]
        if ours != theirs:
            problems.append(f"{path}: {ours} but {service} {shape} {bounds} is {theirs}")
    assert not problems, "\n".join(problems)
    return len(SERVICE_LIMITS)


def check_calls_allowed(state, repo):
    called = sdk_operations_called(repo)
    problems = calls_not_allowed(called, allowed_actions(state))
    assert not problems, "\n".join(problems)
    return called


def check_producer_policy(iam, kinesis, out):
    """The policy for producers, as IAM holds it: PutRecord and PutRecords on
    the stream, nothing else, on nothing else."""
    policy = iam.get_policy(PolicyArn=out["producer_policy_arn"])["Policy"]
    document = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])[
        "PolicyVersion"]["Document"]
    stream_arn = kinesis.describe_stream_summary(StreamName=out["stream_name"])["StreamDescriptionSummary"]["StreamARN"]
    allowed = [(sorted(as_list(s["Action"])), as_list(s["Resource"])) for s in statements(document)
               if s.get("Effect") == "Allow"]
    assert allowed == [(["kinesis:PutRecord", "kinesis:PutRecords"], [stream_arn])], allowed


def check_processor_config(state):
    """Transform buffer 1 MB, Firehose's default: left out of the processor
    parameters (a default set explicitly is a perpetual diff, issue 9827). Before
    it, the de-aggregation splits records at a newline, what `eventlake send` puts
    between packed events (CONTRACT section 5)."""
    stream = next(r for r in state["values"]["root_module"]["resources"]
                  if r["address"] == "aws_kinesis_firehose_delivery_stream.events")
    assert sorted(processor_parameters(stream["values"])) == ["LambdaArn"], processor_parameters(stream["values"])
    destination = stream["values"]["extended_s3_configuration"][0]
    deaggregation = e2e_test.processor_parameters(destination, "RecordDeAggregation")
    assert deaggregation == {"SubRecordType": "DELIMITED", "Delimiter": "Cg=="}, deaggregation
    assert base64.b64decode(deaggregation["Delimiter"]) == b"\n"
    kinds = [p["type"] for p in destination["processing_configuration"][0]["processors"]]
    assert kinds == ["RecordDeAggregation", "Lambda"], kinds


# Attributes moto does not return (or returns reformatted), so a second plan on the
# emulator shows them as changes although AWS returns them: Lambda logging_config,
# Kinesis tags, queue JSON whitespace. Policies whose documents depend on those
# resources are re-read at apply time and show as unknown.
EMULATOR_GAPS = {
    ("aws_lambda_function", "logging_config"),
    ("aws_kinesis_stream", "tags_all"),
    ("aws_sqs_queue", "redrive_policy"),
    ("aws_iam_role_policy", "policy"),
    ("aws_iam_policy", "policy"),
    ("aws_sqs_queue_policy", "policy"),
}


def check_second_plan(plan):
    """A plan right after apply changes nothing (no perpetual diff, e.g. from
    default Firehose processor parameters), apart from the emulator's gaps."""
    seen = set()
    for change in plan.get("resource_changes", []):
        actions = change["change"]["actions"]
        if actions in (["no-op"], ["read"]):
            continue
        assert actions == ["update"], f"{change['address']}: {actions}"
        before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
        unknown = change["change"].get("after_unknown") or {}
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k) or unknown.get(k) is True}
        for attribute in changed:
            gap = (change["type"], attribute)
            if attribute == "redrive_policy":
                assert json.loads(before[attribute]) == json.loads(after[attribute]), change["address"]
            assert gap in EMULATOR_GAPS, f"a second plan changes {change['address']}.{attribute}"
            seen.add(f"{change['type']}.{attribute}")
    return seen


def check_view(glue, database, repo, schema):
    """The view Terraform creates is athena/ddl/events_unique.sql as Athena stores it."""
    view = glue.get_table(DatabaseName=database, Name="events_unique")["Table"]
    assert view["TableType"] == "VIRTUAL_VIEW" and view["Parameters"]["presto_view"] == "true", view
    text = view["ViewOriginalText"]
    assert text.startswith("/* Presto View: ") and text.endswith(" */"), text
    definition = json.loads(base64.b64decode(text[len("/* Presto View: "):-len(" */")]))
    with open(os.path.join(repo, "athena", "ddl", "events_unique.sql")) as f:
        ddl = f.read()
    select = ddl.split("CREATE OR REPLACE VIEW events_unique AS", 1)[1].strip()
    assert definition["originalSql"] == select, definition["originalSql"]
    assert definition["catalog"] == "awsdatacatalog" and definition["schema"] == database, definition
    trino = {"string": "varchar", "bigint": "bigint", "timestamp": "timestamp(3)"}  # as Athena engine v3 stores them
    columns = schema["columns"] + schema["partition_keys"]
    assert definition["columns"] == [{"name": c["name"], "type": trino[c["type"]]} for c in columns], definition
    glue_columns = [(c["Name"], c["Type"]) for c in view["StorageDescriptor"]["Columns"]]
    assert glue_columns == [(c["name"], c["type"]) for c in columns], glue_columns


# --- The lake bucket -------------------------------------------------------------

def rule_scope(rule):
    """The key prefix and the tags a lifecycle rule's filter requires."""
    if "Prefix" in rule:  # the legacy form, without Filter
        return rule["Prefix"], {}
    scope = rule.get("Filter") or {}
    if "And" in scope:
        scope = scope["And"]
        tags = {t["Key"]: t["Value"] for t in scope.get("Tags", [])}
    else:
        tags = {scope["Tag"]["Key"]: scope["Tag"]["Value"]} if "Tag" in scope else {}
    return scope.get("Prefix", ""), tags


def check_staging_lifecycle(rules, staging, expiration_days):
    """No lifecycle rule can delete a staged object the writer has not written:
    every enabled rule that expires current versions (Days or Date) and could
    match a key under the staging prefix requires the writer's tag. An expiration
    that only removes delete markers with nothing behind them removes no data."""
    expiring = []
    for rule in rules:
        prefix, tags = rule_scope(rule)
        could_match = staging.startswith(prefix) or prefix.startswith(staging)
        expiration = rule.get("Expiration") or {}
        if rule["Status"] != "Enabled" or not could_match or not {"Days", "Date"} & set(expiration):
            continue
        assert tags.get(WRITTEN_TAG[0]) == WRITTEN_TAG[1], (
            f"lifecycle rule {rule.get('ID')} expires staged objects not tagged {WRITTEN_TAG}: {rule}")
        expiring.append(rule)
        assert "Transitions" not in rule and "Transition" not in rule, rule
    assert [r["Expiration"].get("Days") for r in expiring] == [expiration_days], expiring


def check_bucket(s3, bucket, staging):
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()), block
    # TLS only: one Deny of every S3 action over plain HTTP, to everyone.
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    denials = [s for s in statements(policy) if s["Effect"] == "Deny"]
    assert len(denials) == 1, denials
    deny = denials[0]
    assert as_list(deny["Action"]) == ["s3:*"], deny
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, deny
    assert deny["Principal"] in ("*", {"AWS": "*"}), deny
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    check_staging_lifecycle(rules, staging, expiration_days=3)  # dev.tfvars
    ids = {r["ID"] for r in rules}
    # Rejected input never disappears: archived, never expired (contract).
    for rule_id, prefix in (("archive-rejected", "_rejected/"), ("archive-firehose-errors", "errors/")):
        rule = next((r for r in rules if r["ID"] == rule_id), None)
        assert rule and rule_scope(rule)[0] == prefix, (rule_id, rules)
        assert [t["StorageClass"] for t in rule.get("Transitions", [])] == ["GLACIER_IR"], rule
    for prefix in ("_rejected/", "errors/"):
        expiring = [r for r in rules if r["Status"] == "Enabled" and prefix.startswith(rule_scope(r)[0])
                    and rule_scope(r)[1].get(WRITTEN_TAG[0]) != WRITTEN_TAG[1]
                    and {"Days", "Date"} & set(r.get("Expiration") or {})]
        assert not expiring, f"lifecycle rules expire rejected input under {prefix}: {expiring}"
    # No rule expires a current version under events/ or compacted/: only a
    # compaction deletes lake files, once their grace period is over. (The staged
    # objects' rule requires the written tag, which the writer may put on staged
    # objects only: iam.tf.)
    for prefix in ("events/", "compacted/"):
        expiring = [r for r in rules if r["Status"] == "Enabled" and prefix.startswith(rule_scope(r)[0])
                    and rule_scope(r)[1].get(WRITTEN_TAG[0]) != WRITTEN_TAG[1]
                    and {"Days", "Date"} & set(r.get("Expiration") or {})]
        assert not expiring, f"lifecycle rules expire live lake files under {prefix}: {expiring}"


def check_alarm_topic(sns, kms, topic_arn, account):
    """The alarm topic is encrypted with a customer-managed key that CloudWatch
    may use (alias/aws/sns cannot be: alarms could never publish), and its policy
    lets CloudWatch publish."""
    topic = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    key_id = topic.get("KmsMasterKeyId", "")
    assert key_id and not key_id.startswith("alias/aws/"), f"alarm topic key: {key_id!r}"
    key = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER" and key["Enabled"], key
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]
    aliases = [a["AliasName"] for a in kms.list_aliases(KeyId=key["KeyId"])["Aliases"]]
    assert aliases == [f"alias/{topic_arn.rsplit(':', 1)[1]}"], aliases
    policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    for service in ("cloudwatch.amazonaws.com", "sns.amazonaws.com"):
        granted = set()
        for statement in statements(policy):
            if statement["Effect"] == "Allow" and service in as_list(statement.get("Principal", {}).get("Service")):
                assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] in (account, [account]), statement
                granted.update(as_list(statement["Action"]))
        assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= granted, f"key policy grants {service} {granted}"
    publishers = [s for s in statements(topic["Policy"]) if s["Effect"] == "Allow"
                  and "cloudwatch.amazonaws.com" in as_list(s.get("Principal", {}).get("Service"))]
    assert publishers and all("sns:Publish" in as_list(s["Action"]) for s in publishers), topic["Policy"]


def check_stack(endpoint, out, eventlake, repo, account):
    glue, lam, firehose = client(endpoint, "glue"), client(endpoint, "lambda"), client(endpoint, "firehose")
    s3, sqs, athena = client(endpoint, "s3"), client(endpoint, "sqs"), client(endpoint, "athena")

    # The Glue table is the writer's schema.
    expected = json.loads(subprocess.run([eventlake, "schema", "--format", "glue-json"], capture_output=True, check=True, text=True).stdout)
    table = glue.get_table(DatabaseName=out["glue_database"], Name="events")["Table"]
    columns = [{"name": c["Name"], "type": c["Type"], "comment": c.get("Comment")} for c in table["StorageDescriptor"]["Columns"]]
    keys = [{"name": c["Name"], "type": c["Type"], "comment": c.get("Comment")} for c in table["PartitionKeys"]]
    assert columns == expected["columns"], f"Glue columns differ from the writer's schema:\n{columns}\n{expected['columns']}"
    assert keys == expected["partition_keys"], f"Glue partition keys differ:\n{keys}"

    # The events_unique view is the one in athena/ddl/, over the schema's columns.
    check_view(glue, out["glue_database"], repo, expected)

    # The writer's settings agree with Firehose, S3 notifications and Glue.
    writer = lam.get_function_configuration(FunctionName=out["writer_function"])
    env = writer["Environment"]["Variables"]
    assert env["LAKE_BUCKET"] == out["lake_bucket"]
    assert env["GLUE_DATABASE"] == out["glue_database"] and env["GLUE_TABLE"] == "events"
    assert env["SECONDS_PER_OBJECT"] == "30" and writer["Timeout"] == 300, (env, writer["Timeout"])
    lake_root = f"s3://{env['LAKE_BUCKET']}/{env.get('LAKE_PREFIX', '')}"
    assert out["lake_root"] == lake_root
    assert table["StorageDescriptor"]["Location"] == lake_root + "events/", table["StorageDescriptor"]["Location"]
    staging = env["STAGING_PREFIX"]
    destination = firehose.describe_delivery_stream(DeliveryStreamName=out["firehose_name"])[
        "DeliveryStreamDescription"]["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert destination["Prefix"] == staging + (
        "event_type=!{partitionKeyFromLambda:event_type}/created_date=!{partitionKeyFromLambda:created_date}/"
    ), destination["Prefix"]
    assert "!{firehose:error-output-type}" in destination["ErrorOutputPrefix"]
    assert not destination["ErrorOutputPrefix"].startswith(staging), "errors must not trigger the writer"
    assert destination["BufferingHints"]["SizeInMBs"] >= 64
    assert destination["CompressionFormat"] == "GZIP"
    processors = {p["Type"]: {q["ParameterName"]: q["ParameterValue"] for q in p["Parameters"]}
                  for p in destination["ProcessingConfiguration"]["Processors"]}
    assert list(processors) == ["RecordDeAggregation", "Lambda"], list(processors)
    assert processors["RecordDeAggregation"] == {"SubRecordType": "DELIMITED", "Delimiter": "Cg=="}, processors
    parameters = processors["Lambda"]
    assert parameters["LambdaArn"].endswith(":function:" + out["transform_function"]), parameters
    # 1 MB (not set: Firehose's default, which the emulator reports).
    assert parameters.get("BufferSizeInMBs", "1") == "1", parameters

    # The transform's created_at window: on by default in Terraform.
    transform_env = lam.get_function_configuration(FunctionName=out["transform_function"])["Environment"]["Variables"]
    assert transform_env.get("CREATED_AT_MAX_AGE_DAYS") == "30", transform_env
    assert transform_env.get("CREATED_AT_MAX_FUTURE_DAYS") == "1", transform_env

    notification = s3.get_bucket_notification_configuration(Bucket=out["lake_bucket"])["QueueConfigurations"][0]
    rules = notification["Filter"]["Key"]["FilterRules"]
    assert {"Name": "Prefix", "Value": staging} in [{"Name": r["Name"].capitalize(), "Value": r["Value"]} for r in rules], rules

    # The lake bucket is locked down, and only written staged objects expire.
    check_bucket(s3, out["lake_bucket"], staging)

    # SQS: the writer consumes the staged queue with partial batch failures; a DLQ
    # that keeps failed messages longer than the queue keeps any message.
    queue = sqs.get_queue_attributes(QueueUrl=out["staged_queue_url"], AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=out["dlq_url"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["QueueArn"], redrive
    assert int(queue["MessageRetentionPeriod"]) == 4 * 86400, queue["MessageRetentionPeriod"]
    assert int(dlq["MessageRetentionPeriod"]) == 14 * 86400, dlq["MessageRetentionPeriod"]
    assert int(queue["VisibilityTimeout"]) == 6 * writer["Timeout"], queue["VisibilityTimeout"]
    mappings = [m for m in lam.list_event_source_mappings()["EventSourceMappings"]
                if m["FunctionArn"].endswith(":function:" + out["writer_function"])]
    assert len(mappings) == 1 and mappings[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], mappings
    assert mappings[0]["EventSourceArn"] == queue["QueueArn"] and mappings[0]["BatchSize"] == 10, mappings

    check_alarm_topic(client(endpoint, "sns"), client(endpoint, "kms"), out["alarm_topic_arn"], account)
    check_compaction_schedule(endpoint, out)

    workgroup = athena.get_work_group(WorkGroup=out["athena_workgroup"])["WorkGroup"]["Configuration"]
    assert workgroup["BytesScannedCutoffPerQuery"] > 0
    assert workgroup["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{out['lake_bucket']}/")

    # The TLS-only policy is enforced: the emulator speaks plain HTTP, so a write
    # is refused.
    try:
        s3.put_object(Bucket=out["lake_bucket"], Key=staging + "x.gz", Body=b"x")
        raise AssertionError("a write without TLS was accepted")
    except botocore.exceptions.ClientError as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403, error


def run_writer(emulated, endpoint, out, repo):
    """Two staged objects through their real S3 notifications: one of two valid
    events, one corrupt gzip. The corrupt one alone comes back as a batch item
    failure; the written one is tagged (so it can expire), the failed one is not."""
    s3, sqs = client(endpoint, "s3"), client(endpoint, "sqs")
    bucket = out["lake_bucket"]
    with open(os.path.join(repo, "tests", "fixtures", "lake-input.ndjson"), "rb") as f:
        valid = f.readlines()[:2]
    prefix = "staging/event_type=payment/created_date=2024-03-17/"
    good, bad = prefix + "eventlake-test-good.gz", prefix + "eventlake-test-corrupt.gz"
    s3.put_object(Bucket=bucket, Key=good, Body=gzip_lines(valid))
    s3.put_object(Bucket=bucket, Key=bad, Body=b"\x1f\x8b\x08\x00" + b"not gzip at all" * 8)
    assert tags(s3, bucket, good) == {} and tags(s3, bucket, bad) == {}, "staged objects arrive untagged"

    messages = staged_notifications(sqs, out["staged_queue_url"], [good, bad])
    queue_arn = sqs.get_queue_attributes(QueueUrl=out["staged_queue_url"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    response = emulated.invoke(sqs_event(messages, queue_arn))
    bad_ids = {m["MessageId"] for m in messages if bad in notified_keys(m)}
    failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
    assert failed == bad_ids, f"batch item failures {failed}, expected the corrupt object's {bad_ids}: {response}\n{emulated.log()}"
    assert tags(s3, bucket, good) == dict([WRITTEN_TAG]), f"written object's tags: {tags(s3, bucket, good)}"
    assert tags(s3, bucket, bad) == {}, "a failed object must stay untagged (it must not expire)"
    parquet = s3.list_objects_v2(Bucket=bucket, Prefix="events/event_type=payment/created_date=2024-03-17/")
    assert [o["Key"] for o in parquet.get("Contents", []) if o["Key"].endswith(".parquet")], parquet


def run_lambdas(stack, endpoint, out, repo, moto_server):
    """Runs both Lambdas as deployed; returns the EMF documents they printed."""
    lam = client(endpoint, "lambda")
    cargo_lambda = cargo_lambda_path(moto_server)
    mapping = next(m["UUID"] for m in lam.list_event_source_mappings()["EventSourceMappings"]
                   if m["FunctionArn"].endswith(":function:" + out["writer_function"]))
    documents = []
    with open(os.path.join(repo, "tests", "fixtures", "firehose-request.json")) as f:
        request = json.load(f)
    for output, name in LAMBDAS.items():
        configuration = lam.get_function_configuration(FunctionName=out[output])
        emulated = Emulated(cargo_lambda, repo, stack.zips[name], configuration, endpoint, stack.work)
        try:
            if name == "firehose-transform":
                response = emulated.invoke(request)
                assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in request["records"]]
            else:
                with StagingOpen(client(endpoint, "s3"), lam, out["lake_bucket"], mapping):
                    run_writer(emulated, endpoint, out, repo)
            printed = emulated.documents()
            assert printed, f"{name} printed no EMF document\n{emulated.log()}"
            documents.extend(printed)
        finally:
            emulated.close()
    # The compactor writes too (its lease), so it also needs the bucket without the
    # TLS-only policy, whose condition moto ignores (it would deny every request).
    with StagingOpen(client(endpoint, "s3"), lam, out["lake_bucket"], mapping):
        documents.extend(run_compactor(stack, endpoint, out, repo, cargo_lambda, lam))
    return documents


def run_compactor(stack, endpoint, out, repo, cargo_lambda, lam):
    """The compactor as deployed (the writer's zip in its compactor mode) on a
    scheduled event: it answers and prints its EMF documents."""
    configuration = lam.get_function_configuration(FunctionName=out["compactor_function"])
    emulated = Emulated(cargo_lambda, repo, stack.zips["parquet-writer"], configuration, endpoint, stack.work)
    try:
        response = emulated.invoke(SCHEDULED_EVENT)
        assert response["failed"] == 0, f"{response}\n{emulated.log()}"
        printed = emulated.documents()
        assert printed and printed[0]["FunctionName"] == out["compactor_function"], printed
        return printed
    finally:
        emulated.close()


def check_compaction_schedule(endpoint, out):
    """The schedule invokes the compactor, one run at a time, never retried (the
    next run takes over), and the compactor runs in its compactor mode."""
    events, lam = client(endpoint, "events"), client(endpoint, "lambda")
    function = lam.get_function(FunctionName=out["compactor_function"])
    arn = function["Configuration"]["FunctionArn"]
    rules = [r for r in events.list_rules()["Rules"] if r.get("ScheduleExpression")]
    targets = {r["Name"]: [t["Arn"] for t in events.list_targets_by_rule(Rule=r["Name"])["Targets"]] for r in rules}
    scheduled = [r for r in rules if targets[r["Name"]] == [arn]]
    assert [(r["ScheduleExpression"], r["State"]) for r in scheduled] == [("rate(1 hour)", "ENABLED")], rules
    assert function.get("Concurrency", {}).get("ReservedConcurrentExecutions") == 1, function.get("Concurrency")
    config = lam.get_function_event_invoke_config(FunctionName=out["compactor_function"])
    assert config["MaximumRetryAttempts"] == 0, config
    variables = function["Configuration"]["Environment"]["Variables"]
    assert variables["EVENTLAKE_HANDLER"] == "compactor", variables


# --- Every alarm and dashboard metric is one something emits ----------------------

# Metrics AWS services publish that this stack may watch, and the dimension sets
# each namespace publishes them with (CloudWatch's metric lists for Lambda, SQS,
# Firehose including dynamic partitioning, and Kinesis Data Streams).
AWS_METRICS = {
    "AWS/Lambda": (
        {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions", "DeadLetterErrors",
         "IteratorAge", "AsyncEventAge", "UnreservedConcurrentExecutions"},
        [{"FunctionName"}, {"FunctionName", "Resource"}, {"FunctionName", "ExecutedVersion"}],
    ),
    "AWS/SQS": (
        {"ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible",
         "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed", "NumberOfMessagesSent",
         "NumberOfMessagesReceived", "NumberOfMessagesDeleted", "NumberOfEmptyReceives", "SentMessageSize"},
        [{"QueueName"}],
    ),
    "AWS/Firehose": (
        {"DeliveryToS3.DataFreshness", "DeliveryToS3.Success", "DeliveryToS3.Records", "DeliveryToS3.Bytes",
         "DeliveryToS3.ObjectCount", "ExecuteProcessing.Success", "ExecuteProcessing.Duration",
         "SucceedProcessing.Records", "SucceedProcessing.Bytes", "PartitionCount", "PartitionCountExceeded",
         "ActivePartitionsLimit", "PerPartitionThroughput", "JQProcessing.Duration",
         "DataReadFromKinesisStream.Records", "DataReadFromKinesisStream.Bytes", "ThrottledGetRecords",
         "ThrottledDescribeStream", "ThrottledGetShardIterator", "KinesisMillisBehindLatest",
         "IncomingBytes", "IncomingRecords"},
        [{"DeliveryStreamName"}],
    ),
    "AWS/Kinesis": (
        {"IncomingRecords", "IncomingBytes", "GetRecords.Records", "GetRecords.Bytes", "GetRecords.Success",
         "GetRecords.Latency", "GetRecords.IteratorAgeMilliseconds", "PutRecord.Success", "PutRecords.Success",
         "PutRecords.TotalRecords", "PutRecords.SuccessfulRecords", "PutRecords.FailedRecords",
         "PutRecords.ThrottledRecords", "ReadProvisionedThroughputExceeded",
         "WriteProvisionedThroughputExceeded"},
        [{"StreamName"}],
    ),
}


def emitted_metrics(documents):
    """(namespace, metric, dimensions) for every metric the EMF documents define,
    once per dimension set, with the dimension values the documents carry."""
    found = set()
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for names in directive["Dimensions"]:
                dimensions = frozenset((name, str(document[name])) for name in names)
                for metric in directive["Metrics"]:
                    assert metric["Name"] in document, f"EMF metric {metric['Name']} without a value: {document}"
                    found.add((directive["Namespace"], metric["Name"], dimensions))
    return found


def stack_dimension_values(out):
    """The dimension values that name this stack's resources."""
    return {
        "FunctionName": {out["transform_function"], out["writer_function"], out["compactor_function"]},
        "QueueName": {out["staged_queue_url"].rsplit("/", 1)[1], out["dlq_url"].rsplit("/", 1)[1]},
        "DeliveryStreamName": {out["firehose_name"]},
        "StreamName": {out["stream_name"]},
    }


def unemitted(namespace, name, dimensions, emitted, resources):
    """Why nothing emits this metric, or None if something does."""
    if namespace.startswith("AWS/"):
        if namespace not in AWS_METRICS:
            return f"no table of {namespace}'s metrics in this test"
        names, dimension_sets = AWS_METRICS[namespace]
        if name not in names:
            return f"{namespace} publishes no metric {name}"
        if set(dimensions) not in dimension_sets:
            return f"{namespace} publishes {name} by {dimension_sets}, not {sorted(dimensions)}"
        strangers = {k: v for k, v in dimensions.items() if v not in resources.get(k, set())}
        return f"dimensions {strangers} name no resource of this stack" if strangers else None
    if emitted is None:
        return None  # the Lambdas could not be run: reported as skipped
    if (namespace, name, frozenset(dimensions.items())) in emitted:
        return None
    near = sorted(f"{m} {dict(d)}" for ns, m, d in emitted if ns == namespace and m == name)
    return f"no EMF document of the built Lambdas defines it (with other dimensions: {near or 'none'})"


def required_alarms(out):
    """What must be watched (issues 13, 29): writer failures (Lambda's Errors stays 0
    under ReportBatchItemFailures), rows it rejected, the staged queue falling behind, the DLQ,
    Firehose's freshness and its partitions before the limit and past it."""
    queue, dlq = out["staged_queue_url"].rsplit("/", 1)[1], out["dlq_url"].rsplit("/", 1)[1]
    stream = {"DeliveryStreamName": out["firehose_name"]}
    return [
        ("eventlake", "ObjectsFailed", {"FunctionName": out["writer_function"]}),
        ("eventlake", "PartitionsFailed", {"FunctionName": out["compactor_function"]}),
        ("eventlake", "RowsRejected", {"FunctionName": out["writer_function"]}),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": queue}),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": dlq}),
        ("AWS/Firehose", "DeliveryToS3.DataFreshness", stream),
        ("AWS/Firehose", "PartitionCount", stream),
        ("AWS/Firehose", "PartitionCountExceeded", stream),
    ]


def check_alarm_metrics(cloudwatch, out, emitted, state):
    """Every alarm of the stack watches a metric something emits, and the
    metrics that must be watched are."""
    resources = stack_dimension_values(out)
    alarms = cloudwatch.describe_alarms(MaxRecords=100)["MetricAlarms"]
    declared = [r for r in state["values"]["root_module"]["resources"] if r["type"] == "aws_cloudwatch_metric_alarm"]
    assert len(alarms) == len(declared) >= 10, (len(alarms), len(declared))
    watched_all = [(a.get("Namespace"), a.get("MetricName"), {d["Name"]: d["Value"] for d in a.get("Dimensions", [])})
                   for a in alarms]
    unwatched = [r for r in required_alarms(out) if r not in watched_all]
    assert not unwatched, f"no alarm watches {unwatched}"
    problems = []
    for alarm in alarms:
        watched = [(alarm.get("Namespace"), alarm.get("MetricName"), alarm.get("Dimensions", []))]
        if alarm.get("Metrics"):
            watched = [(q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Metric"]["MetricName"],
                        q["MetricStat"]["Metric"].get("Dimensions", [])) for q in alarm["Metrics"] if "MetricStat" in q]
        for namespace, name, dimensions in watched:
            why = unemitted(namespace, name, {d["Name"]: d["Value"] for d in dimensions}, emitted, resources)
            if why:
                problems.append(f"alarm {alarm['AlarmName']} watches {namespace} {name}: {why}")
        assert out["alarm_topic_arn"] in alarm["AlarmActions"], alarm["AlarmName"]
    assert not problems, "alarms that can never fire:\n  " + "\n  ".join(problems)
    return len(alarms)


def check_cost_model(eventlake, state, alarms):
    """`eventlake cost` prices the alarms and dashboards this stack creates."""
    text = subprocess.run([eventlake, "cost", "--events-per-hour", "1000000", "--event-bytes", "340"],
                          capture_output=True, check=True, text=True).stdout
    line = next(line for line in text.splitlines() if line.startswith("| CloudWatch |"))
    priced = re.search(r"; (\d+) alarms × .*; (\d+) dashboard", line)
    assert priced, line
    dashboards = sum(1 for r in state["values"]["root_module"]["resources"] if r["type"] == "aws_cloudwatch_dashboard")
    assert (int(priced[1]), int(priced[2])) == (alarms, dashboards), (line, alarms, dashboards)


def dashboard_metrics(body):
    """(namespace, metric, dimensions) of every metric line of a dashboard, with
    CloudWatch's "." (same as the line above) resolved."""
    found = []
    for widget in body["widgets"]:
        previous = []
        for line in widget.get("properties", {}).get("metrics", []):
            assert isinstance(line, list), f"widget {widget['properties'].get('title')!r}: a metric line must be a list, got {line!r}"
            fields = [f for f in line if not isinstance(f, dict)]
            fields = [previous[i] if f == "." and i < len(previous) else f for i, f in enumerate(fields)]
            previous = fields
            dimensions = dict(zip(fields[2::2], fields[3::2]))
            found.append((fields[0], fields[1], dimensions))
    return found


def check_dashboard_metrics(cloudwatch, out, emitted):
    """Every metric the dashboard shows is one something emits."""
    body = json.loads(cloudwatch.get_dashboard(DashboardName=out["dashboard"])["DashboardBody"])
    shown = dashboard_metrics(body)
    resources = stack_dimension_values(out)
    problems = [f"{ns} {name} {dims}: {why}" for ns, name, dims in shown
                if (why := unemitted(ns, name, dims, emitted, resources))]
    assert not problems, "dashboard metrics nothing emits:\n  " + "\n  ".join(problems)
    names = {name for _, name, _ in shown}
    assert {"PartitionsInBatch", "ObjectsFailed", "PartitionCount"} <= names, names
    return len(shown)


def empty_versioned_bucket(s3, bucket):
    """Deletes every version and delete marker of the bucket while its versioning is
    still enabled. An emulator gap: `terraform destroy` suspends versioning before
    it empties the bucket (force_destroy), and moto 5.2.5's DeleteObject then fails
    with a 500 on a key with a delete marker (`FakeDeleteMarker` has no `dispose`),
    which the provider retries for many minutes. The compactor and the writer leave
    delete markers; AWS empties such a bucket. The TLS-only bucket policy goes first:
    moto enforces it on this plain-HTTP client (destroy removes it anyway)."""
    s3.delete_bucket_policy(Bucket=bucket)
    entries = [{"Key": e["Key"], "VersionId": e["VersionId"]}
               for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
               for e in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    for start in range(0, len(entries), 1000):
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": entries[start:start + 1000], "Quiet": True})
        assert not response.get("Errors"), f"emptying the lake bucket: {response['Errors'][:3]}"


def main():
    repo, zips, eventlake, moto_server = sys.argv[1:5]
    with_e2e = sys.argv[5:] == ["--e2e"]
    moto, endpoint = start_moto(moto_server)
    stack = Stack(repo, zips, endpoint)
    try:
        plugin_dir = os.environ.get("TF_PLUGIN_DIR")
        stack.terraform("init", "-backend=false", "-input=false", *([f"-plugin-dir={plugin_dir}"] if plugin_dir else []))
        check_refused_settings(stack)
        check_accepted_settings(stack)
        print(f"plan: {len(REFUSED_VALUES)} unsafe values and {len(REFUSED_COMBINATIONS)} unsafe combinations "
              "refused; a 0.5 MB transform buffer and an open created_at bound configured as set")
        plan = stack.plan_json("plan.bin")
        check_plan_iam(plan)
        print("plan: no wildcard IAM actions allowed (KMS key policy: AWS's documented forms only)")
        started = time.time()
        stack.terraform("apply", "-auto-approve", *stack.vars)
        state = json.loads(stack.terraform("show", "-json").stdout)
        count = len(state["values"]["root_module"]["resources"])
        print(f"apply: {count} resources and data sources in {time.time() - started:.0f} s")
        account = client(endpoint, "sts").get_caller_identity()["Account"]
        check_applied_iam(state, account)
        called = check_calls_allowed(state, repo)
        limits = check_service_limits(repo)
        print(f"iam: the {len(called)} AWS operations src/ calls are each allowed to the code that calls them")
        print(f"limits: {limits} constants of src/ equal to AWS's service models (botocore)")
        check_processor_config(state)
        out = {k: v["value"] for k, v in json.loads(stack.terraform("output", "-json").stdout).items()}
        check_stack(endpoint, out, eventlake, repo, account)
        check_producer_policy(client(endpoint, "iam"), client(endpoint, "kinesis"), out)
        print("stack: Glue columns, view, prefixes, processor parameters, TLS-only bucket, lifecycle "
              "(only written staged objects expire), queues, alarm topic key, producer policy as expected")
        second = stack.plan_json("second.bin")
        gaps = check_second_plan(second)
        print(f"second plan: no changes but the emulator's known gaps ({', '.join(sorted(gaps)) or 'none'})")

        if with_e2e:
            # On the fresh stack, before run_lambdas leaves its test objects.
            e2e_test.run(stack, endpoint, out, state, repo, eventlake, cargo_lambda_path(moto_server),
                         e2e_test.events_from_env())

        emitted = None
        if stack.missing_zips:
            print(f"SKIPPED: running the Lambdas and checking eventlake alarm metrics against their EMF output: "
                  f"no {', '.join(stack.missing_zips)} zip under {zips} (run make build)")
        else:
            with ACCESS.enforced(endpoint):
                documents = run_lambdas(stack, endpoint, out, repo, moto_server)
            emitted = emitted_metrics(documents)
            print(f"lambdas: transform answered the fixture; writer wrote and tagged the good object, "
                  f"handed back the corrupt one; {len(documents)} EMF documents")
        cloudwatch = client(endpoint, "cloudwatch")
        alarms = check_alarm_metrics(cloudwatch, out, emitted, state)
        shown = check_dashboard_metrics(cloudwatch, out, emitted)
        check_cost_model(eventlake, state, alarms)
        print(f"metrics: {alarms} alarms and {shown} dashboard lines watch metrics that are published, and "
              f"`eventlake cost` prices those alarms and the dashboard"
              + (" (AWS namespaces only)" if emitted is None else ""))

        empty_versioned_bucket(client(endpoint, "s3"), out["lake_bucket"])
        refused = stack.terraform("plan", "-destroy", *stack.vars, check=False)
        assert refused.returncode != 0 and "prevent_destroy" in refused.stderr, refused.stderr[-2000:]
        # As make teardown does: the protected table forgotten, Glue drops it with its database.
        stack.terraform("state", "rm", "aws_glue_catalog_table.events")
        stack.terraform("destroy", "-auto-approve", *stack.vars)
        left = stack.terraform("state", "list").stdout.split()
        assert not [r for r in left if not r.startswith("data.")], f"left after destroy: {left}"
        print("destroy: refused while the events table is protected; after teardown's `state rm`, nothing left")
    finally:
        moto.kill()
        moto.wait()
        shutil.rmtree(stack.work, ignore_errors=True)


if __name__ == "__main__":
    main()
