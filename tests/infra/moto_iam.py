#!/usr/bin/env python3
"""moto_server that judges IAM policies where plain moto cannot.

    moto_iam.py [moto_server's arguments]

Run with the Python of the venv that holds moto. moto enforces IAM once its
request count passes INITIAL_NO_AUTH_ACTION_COUNT (the tests raise and lower it
with POST /moto-api/reset-auth), but it judges every service except S3 and SQS
against the resource "*", and an identity policy's conditions without the
request's values. So a Glue statement on the stack's catalog, database and table
(what AWS requires) would deny everything, and a StringLike condition would be
skipped. This wrapper, loaded before the server starts, closes those gaps and
lets the harness through:

- Glue requests are judged against the ARN of what they name: the table when the
  request names a database and a table, else the database, else the catalog.
  (AWS checks the catalog, the database and the table all three; moto checks one.
  That the stack grants the other two is checked in the plan by stack_test.py.)
- DynamoDB requests are judged against the table they name, Kinesis requests
  against the stream (by name or ARN; GetRecords by the stream its iterator
  reads, which moto writes into the iterator). A ListShards page asked for by
  its token alone names no stream and is judged against "*" (AWS judges it
  against the stream the token came from).
- An identity policy's conditions see `s3:prefix` (ListObjectsV2's prefix), and
  StringLike is evaluated (`*` and `?`), as AWS does.
- An S3 request is judged as the IAM action AWS maps it to (moto computes it,
  then judges the operation's name: ListObjectsV2 instead of s3:ListBucket).
- Requests signed with the tests' own key (`test`, emulators.TEST_KEYS) are
  let through unjudged: the harness (Terraform, the Firehose and SQS stand-ins,
  the checks that read the lake back) is not under test, and moto cannot verify
  the signature of some of its calls. Every other key is judged: the built
  Lambdas run with credentials of their deployed roles.

Everything else is moto's own evaluation. What it still cannot judge (KMS key
policies, bucket policies' conditions, service principals) is listed in
docs/testing.md.
"""

import fnmatch
import sys

from moto.core.authorization import ActionAuthenticatorMixin
from moto.dynamodb.responses import DynamoHandler
from moto.glue.responses import GlueResponse
from moto.kinesis.responses import KinesisResponse
from moto.kinesis.utils import decompose_shard_iterator
from moto.iam import access_control, policy_conditions
from moto.server import main
from moto.utilities.utils import get_partition

from emulators import TEST_KEYS


def glue_resource(self):
    partition = get_partition(self.region)
    prefix = f"arn:{partition}:glue:{self.region}:{self.current_account}"
    try:
        database, table, name = (self._get_param(key) for key in ("DatabaseName", "TableName", "Name"))
    except Exception:  # a body that is not JSON: moto answers it as it would
        return f"{prefix}:catalog"
    # GetTable names its table `Name`, GetDatabase its database.
    if database and not table:
        table = name
    elif not database and name and "Database" in self._get_action():
        database = name
    if database and table:
        return f"{prefix}:table/{database}/{table}"
    if database:
        return f"{prefix}:database/{database}"
    return f"{prefix}:catalog"


def dynamodb_resource(self):
    prefix = f"arn:{get_partition(self.region)}:dynamodb:{self.region}:{self.current_account}"
    try:
        table = self._get_param("TableName")
    except Exception:  # a body that is not JSON: moto answers it as it would
        return "*"
    return f"{prefix}:table/{table}" if table else "*"


def kinesis_resource(self):
    prefix = f"arn:{get_partition(self.region)}:kinesis:{self.region}:{self.current_account}"
    try:
        arn, name, iterator = (self._get_param(key) for key in ("StreamARN", "StreamName", "ShardIterator"))
    except Exception:
        return "*"
    if arn:
        return arn
    if not name and iterator:
        try:
            name = decompose_shard_iterator(iterator)[0]
        except Exception:  # not an iterator moto made: moto answers it as it would
            return "*"
    return f"{prefix}:stream/{name}" if name else "*"


def string_like(expected, actual):
    patterns = [expected] if isinstance(expected, str) else expected
    return any(fnmatch.fnmatchcase(actual, pattern) for pattern in patterns)


def request_condition_values(data):
    values = access_control.format_incoming_conditional_values(data)
    prefix = data.get("prefix")
    if prefix is not None:
        values["s3:prefix"] = prefix[0] if isinstance(prefix, list) else prefix
    return values


def check_action_permitted(self, resource):
    """moto's IAMRequestBase.check_action_permitted, with the request's condition
    values passed to identity policies."""
    if self._action == "sts:GetCallerIdentity":
        return
    if isinstance(self, access_control.S3IAMRequest) and self._data.get("Action"):
        # The IAM action moto's S3 maps the request to (ListObjectsV2 is
        # s3:ListBucket, HeadObject s3:GetObject, UploadPart s3:PutObject), not
        # the operation's name.
        self._action = f"s3:{self._data['Action']}"
    conditions = request_condition_values(self._data)
    permitted = False
    for policy in self._access_key.collect_policies():
        result = access_control.IAMPolicy(policy).is_action_permitted(
            self._action, resource, incoming_condition_values=conditions
        )
        if result == access_control.PermissionResult.DENIED:
            self._raise_access_denied()
        elif result == access_control.PermissionResult.PERMITTED:
            permitted = True
    if self._is_assuming_role_operation(resource):
        permitted = permitted and self._check_role_trust_relationship(resource)
    if not permitted:
        self._raise_access_denied()


# The tests' own key: what the harness does (apply the stack, stand in for
# Firehose and SQS, read the lake back) is not what is being judged, and moto
# cannot verify the signatures of some of its calls (Lambda's GETs).
TRUSTED_KEY = TEST_KEYS["AWS_ACCESS_KEY_ID"]
judge_request = ActionAuthenticatorMixin._authenticate_and_authorize_action


def authenticate_and_authorize(self, iam_request_cls, resource="*"):
    if f"Credential={TRUSTED_KEY}/" in self.headers.get("Authorization", ""):
        return
    judge_request(self, iam_request_cls, resource)


ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate_and_authorize
GlueResponse._determine_resource = glue_resource
DynamoHandler._determine_resource = dynamodb_resource
KinesisResponse._determine_resource = kinesis_resource
policy_conditions.CONDITION_OPERATIONS["StringLike"] = string_like
access_control.IAMRequestBase.check_action_permitted = check_action_permitted

if __name__ == "__main__":
    sys.exit(main())
