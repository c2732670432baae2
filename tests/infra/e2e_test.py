"""`make e2e`: events through the Terraform stack deployed on emulators, into the
lake, then faults on the same pipeline; each step checked against the input.

What is real: Terraform applies terraform/ to moto_server on 127.0.0.1 and every
setting below is read from what it created (outputs, state, the deployed function
configurations); the events come from `eventlake generate` and go to moto's
Kinesis with `eventlake send` (packed several per record); the built firehose-transform and parquet-writer zips run
as processes under cargo-lambda's Runtime API emulator with their deployed
environment; moto's S3 notifies the deployed SQS queue of each staged object, and
its redrive policy moves a message to the DLQ; the writer registers partitions in
moto's Glue; the lake is read back with DuckDB, and every record is judged by an
oracle written from the contract (contract_oracle.py), not by the Rust code.

What is emulated here, because no emulator runs it (each small, in this file):
- `FirehoseStandIn`, Firehose's delivery loop: reads the stream with GetRecords,
  splits each record at the deployed de-aggregation delimiter, cuts batches at the deployed processor buffer (BufferSizeInMBs; Firehose's
  default of 1 MB when Terraform leaves it out), invokes the transform, writes its
  `Ok` records by their partition keys as GZIP NDJSON under the deployed prefix
  (one object per partition per flush) and its `ProcessingFailed` ones under the
  deployed error prefix in Firehose's error-record format. It flushes when the
  stream is drained, standing in for the buffering interval (no partition here
  reaches the deployed buffering size). A transform invocation that gives no
  answer is retried whole, in a new sandbox, as Firehose retries a timeout.
- `WriterEventSource`, Lambda's SQS event source mapping: receives up to the
  mapping's batch size, invokes the writer, deletes what it did not hand back and
  makes the handed-back messages visible again (the visibility timeout elapsing).
- `FaultProxy`: the writer's AWS endpoint, forwarding to moto and failing or
  holding chosen requests.

What it cannot show: Firehose's real buffering and retry timing, IAM evaluation
(moto allows every call), service limits and throttling, Lambda's concurrency and
scaling, S3's real notification latency.

usage: e2e_test.py REPO_ROOT LAMBDA_ZIP_DIR EVENTLAKE_BINARY MOTO_SERVER
Environment: E2E_EVENTS (events of the first wave, default 20000).
"""

import base64
import collections
import datetime
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import duckdb

import contract_oracle as oracle
from emulators import (
    ACCESS, REGION, SCHEDULED_EVENT, TEST_KEYS, WRITTEN_TAG, Emulated, Forwarder, Stack, StagingOpen, cargo_lambda_path, client, gzip_lines,
    notified_keys, sqs_event, start_moto, tags,
)

MB = 1024 * 1024
# Firehose's processor buffer when BufferSizeInMBs is not set (its documented default).
FIREHOSE_DEFAULT_PROCESSOR_MB = 1
FIREHOSE_DEFAULT_PROCESSOR_SECONDS = 60
# What Firehose writes for a record the transform returned ProcessingFailed.
PROCESSING_FAILED = ("Lambda.ProcessingFailedStatus", "ProcessingFailed status set for record")
# How long the stand-in waits for a transform answer before it counts a timeout.
TRANSFORM_PATIENCE_SECONDS = 10


def resource(state, address):
    found = [r for r in state["values"]["root_module"]["resources"] if r["address"] == address]
    assert len(found) == 1, f"{address} is not in the state"
    return found[0]["values"]


class Deployed:
    """Every setting the harness uses, read from the applied stack."""

    def __init__(self, endpoint, out, state):
        firehose = resource(state, "aws_kinesis_firehose_delivery_stream.events")
        destination = firehose["extended_s3_configuration"][0]
        self.stream = out["stream_name"]
        self.operator_policy_arn, self.producer_policy_arn = out["operator_policy_arn"], out["producer_policy_arn"]
        self.consumer_policy_arn, self.tail_checkpoint_table = out["consumer_policy_arn"], out["tail_checkpoint_table"]
        self.delivery_stream_arn = firehose["arn"]
        self.source_stream_arn = firehose["kinesis_source_configuration"][0]["kinesis_stream_arn"]
        self.bucket = destination["bucket_arn"].split(":::", 1)[1]
        assert self.bucket == out["lake_bucket"], (self.bucket, out["lake_bucket"])
        self.prefix = destination["prefix"]
        self.error_prefix = destination["error_output_prefix"]
        self.buffer_bytes = destination["buffering_size"] * MB
        self.buffer_seconds = destination["buffering_interval"]
        assert destination["compression_format"] == "GZIP", destination["compression_format"]
        parameters = processor_parameters(destination, "Lambda")
        deaggregation = processor_parameters(destination, "RecordDeAggregation")
        assert deaggregation["SubRecordType"] == "DELIMITED", deaggregation
        self.delimiter = base64.b64decode(deaggregation["Delimiter"])
        self.transform_arn = parameters["LambdaArn"]
        self.processor_buffer_bytes = int(float(parameters.get("BufferSizeInMBs", FIREHOSE_DEFAULT_PROCESSOR_MB)) * MB)
        self.processor_seconds = int(parameters.get("BufferIntervalInSeconds", FIREHOSE_DEFAULT_PROCESSOR_SECONDS))

        lam = client(endpoint, "lambda")
        self.transform = lam.get_function_configuration(FunctionName=out["transform_function"])
        self.writer = lam.get_function_configuration(FunctionName=out["writer_function"])
        self.compactor = lam.get_function_configuration(FunctionName=out["compactor_function"])
        assert self.transform["FunctionArn"] == self.transform_arn, "the processor invokes another function"
        transform_env = self.transform["Environment"]["Variables"]
        days = lambda name: int(transform_env[name]) if transform_env.get(name) else None  # noqa: E731
        self.max_age_days = days("CREATED_AT_MAX_AGE_DAYS")
        self.max_future_days = days("CREATED_AT_MAX_FUTURE_DAYS")

        mapping = resource(state, "aws_lambda_event_source_mapping.writer")
        self.mapping_uuid, self.writer_batch_size = mapping["uuid"], mapping["batch_size"]
        self.writer_batching_seconds = mapping["maximum_batching_window_in_seconds"]
        staged = resource(state, "aws_sqs_queue.staged")
        self.queue_url, self.queue_arn = out["staged_queue_url"], staged["arn"]
        assert mapping["event_source_arn"] == self.queue_arn
        self.max_receives = json.loads(staged["redrive_policy"])["maxReceiveCount"]
        self.dlq_url = out["dlq_url"]
        writer_env = self.writer["Environment"]["Variables"]
        assert writer_env["LAKE_BUCKET"] == self.bucket
        self.lake_prefix = writer_env.get("LAKE_PREFIX", "")
        self.staging_prefix = writer_env["STAGING_PREFIX"]
        self.glue_database, self.glue_table = writer_env["GLUE_DATABASE"], writer_env["GLUE_TABLE"]
        assert self.prefix.startswith(self.staging_prefix), (self.prefix, self.staging_prefix)

    def window(self):
        return (time.time(), self.max_age_days, self.max_future_days)


def processor_parameters(destination, kind):
    """The parameters (name -> value; None while unknown, in a plan) of the
    delivery stream's one processor of type `kind`."""
    processors = [p for p in destination["processing_configuration"][0]["processors"] if p["type"] == kind]
    assert len(processors) == 1, f"{len(processors)} processors of type {kind}"
    return {p["parameter_name"]: p.get("parameter_value") for p in processors[0]["parameters"]}


def render_prefix(template, values):
    """A Firehose prefix with its `!{namespace:name}` expressions filled in; an
    expression the stand-in does not know fails the test (so does a prefix change
    it would get wrong)."""
    out, rest = "", template
    while "!{" in rest:
        before, _, after = rest.partition("!{")
        expression, _, rest = after.partition("}")
        assert expression in values, f"the stand-in cannot fill !{{{expression}}} in {template!r}"
        out += before + values[expression]
    return out + rest


# --- The producer ------------------------------------------------------------------

def generate(eventlake, events, seed, start, days, duplicates, invalid, types=20):
    result = subprocess.run(
        [eventlake, "generate", "--events", str(events), "--seed", str(seed), "--start", start, "--days", str(days),
         "--types", str(types), "--duplicates", str(duplicates), "--invalid", str(invalid)],
        capture_output=True, check=True,
    )
    lines = result.stdout.split(b"\n")
    assert lines[-1] == b"" and len(lines) == events + 1, "generate must write one line per event"
    return lines[:-1]


def moto_env(endpoint, credentials=None):
    """The environment of an `eventlake` process that talks to moto: with the
    credential variables `credentials` (default: the tests' own key)."""
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION=REGION, **(credentials or TEST_KEYS))
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(credentials or {})
    return env


def send(eventlake, endpoint, stream, records, work, pack_kib=None):
    """`eventlake send` of `records` (NDJSON lines) to the deployed stream: packed
    by default. One call in flight: moto's Kinesis can give two records one
    sequence number when calls overlap (tests/it/send_kinesis.rs)."""
    path = os.path.join(work, f"send-{uuid.uuid4()}.ndjson")
    with open(path, "wb") as f:
        f.write(b"".join(record + b"\n" for record in records))
    packing = ["--pack-kib", str(pack_kib)] if pack_kib is not None else []
    result = subprocess.run(
        [eventlake, "send", "--stream", stream, "--concurrency", "1", "--quiet", *packing,
         "--failed", f"{path}.failed", path],
        capture_output=True, env=moto_env(endpoint),
    )
    assert result.returncode == 0, f"eventlake send failed: {result.stderr.decode()}"
    os.remove(path)
    return result.stdout.decode()


# --- Firehose's delivery loop (the stand-in) ----------------------------------------

class FirehoseStandIn:
    def __init__(self, deployed, endpoint, start_transform):
        self.deployed = deployed
        self.kinesis, self.s3 = client(endpoint, "kinesis"), client(endpoint, "s3")
        self.start_transform = start_transform
        self.transform = start_transform()
        self.iterators = {
            shard["ShardId"]: self.kinesis.get_shard_iterator(
                StreamName=deployed.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            for shard in self.kinesis.list_shards(StreamName=deployed.stream)["Shards"]
        }
        self.flushes = 0
        # What was delivered, for the oracle: every batch's records (recordId ->
        # original bytes) by flush, and every staged object with its flush.
        self.batches = []                 # (flush, {recordId: raw})
        self.staged = []                  # (key, flush, partition)
        self.transform_logs = []          # the stderr lines of every transform sandbox
        self.seconds = collections.Counter()
        # Faults for the next flush's first staged object: written twice (a lost
        # acknowledgement: Firehose writes it again under a new name), or torn
        # (its first half only; the whole body kept in `torn` to repair it).
        self.lose_next_staged_ack = False
        self.tear_next_object = False
        self.torn = {}

    def close(self):
        self.transform_logs.extend(self.transform.log_lines())
        self.transform.close()

    def restart_transform(self):
        self.close()
        self.transform = self.start_transform()

    def read_stream(self):
        """Every record the stream holds past the last read, split into its events
        as the deployed RecordDeAggregation processor splits it."""
        return self.deaggregate(self.get_records())

    def deaggregate(self, records):
        """Firehose's RecordDeAggregation processor, type DELIMITED: each record's
        data cut at the deployed delimiter, each piece a record of its own (empty
        pieces, from a delimiter at the end, dropped), at most 500 per record."""
        pieces = []
        for shard, record in records:
            parts = [part for part in record["Data"].split(self.deployed.delimiter) if part]
            assert len(parts) <= 500, f"{len(parts)} events in one record: Firehose splits at most 500"
            pieces.extend((shard, dict(record, Data=part, SubSequenceNumber=index)) for index, part in enumerate(parts))
        return pieces

    def get_records(self):
        records = []
        for shard, iterator in self.iterators.items():
            while True:
                response = self.kinesis.get_records(ShardIterator=iterator, Limit=10000)
                iterator = response["NextShardIterator"]
                records.extend((shard, r) for r in response["Records"])
                if not response["Records"]:
                    break
            self.iterators[shard] = iterator
        return records

    def batches_of(self, records):
        """Batches of at most the processor buffer's bytes of record data."""
        batch, size = [], 0
        for shard, record in records:
            if batch and size + len(record["Data"]) > self.deployed.processor_buffer_bytes:
                yield batch
                batch, size = [], 0
            batch.append((shard, record))
            size += len(record["Data"])
        if batch:
            yield batch

    def request(self, batch):
        def millis(moment):
            return int(moment.timestamp() * 1000)
        return {
            "invocationId": str(uuid.uuid4()), "deliveryStreamArn": self.deployed.delivery_stream_arn,
            "sourceKinesisStreamArn": self.deployed.source_stream_arn, "region": REGION,
            "records": [{
                "recordId": f"{record['SequenceNumber']}{shard[-4:]}{record['SubSequenceNumber']:03d}",
                "approximateArrivalTimestamp": millis(record["ApproximateArrivalTimestamp"]),
                "data": base64.b64encode(record["Data"]).decode(),
                "kinesisRecordMetadata": {
                    "shardId": shard, "partitionKey": record["PartitionKey"],
                    "approximateArrivalTimestamp": millis(record["ApproximateArrivalTimestamp"]),
                    "sequenceNumber": record["SequenceNumber"], "subsequenceNumber": record["SubSequenceNumber"],
                },
            } for shard, record in batch],
        }

    def invoke(self, request, timeouts):
        """The transform's answer, retrying a timed-out invocation whole in a new
        sandbox; `timeouts`: how many invocations give no answer (fault injection)."""
        attempts = 0
        while True:
            attempts += 1
            if timeouts > 0:
                self.transform.proxy.lose_responses(1)
                timeouts -= 1
            started = time.time()
            try:
                response = self.transform.invoke(request, timeout=TRANSFORM_PATIENCE_SECONDS)
            except TimeoutError:
                self.restart_transform()
                continue
            self.seconds["transform"] += time.time() - started
            return response, attempts

    def deliver(self, transform_timeouts=0):
        """Reads what the stream holds, transforms it batch by batch, then flushes:
        staged objects and error records to S3. Returns the staged keys written."""
        started = time.time()
        records = self.read_stream()
        self.seconds["read"] += time.time() - started
        flush = self.flushes
        self.flushes += 1
        buffers, errors = collections.defaultdict(list), []
        for batch in self.batches_of(records):
            request = self.request(batch)
            response, attempts = self.invoke(request, transform_timeouts)
            transform_timeouts = 0
            sent = request["records"]
            answered = response["records"]
            assert [r["recordId"] for r in answered] == [r["recordId"] for r in sent], "records out of order"
            self.batches.append((flush, {r["recordId"]: base64.b64decode(r["data"]) for r in sent}))
            now = int(time.time() * 1000)
            for original, result in zip(sent, answered):
                if result["result"] == "Ok":
                    keys = result["metadata"]["partitionKeys"]
                    partition = (keys["event_type"], keys["created_date"])
                    buffers[partition].append(base64.b64decode(result["data"]))
                elif result["result"] == "ProcessingFailed":
                    errors.append({
                        "attemptsMade": attempts, "arrivalTimestamp": original["approximateArrivalTimestamp"],
                        "errorCode": PROCESSING_FAILED[0], "errorMessage": PROCESSING_FAILED[1],
                        "attemptEndingTimestamp": now, "rawData": original["data"],
                        "lambdaArn": self.deployed.transform_arn,
                    })
                else:
                    assert result["result"] == "Dropped", result["result"]
        started = time.time()
        written = []
        for partition, lines in sorted(buffers.items()):
            size = sum(len(line) for line in lines)
            assert size < self.deployed.buffer_bytes, (
                f"{partition} buffered {size} bytes: past the deployed buffering size, Firehose would have "
                "written it in parts; this stand-in writes one object per partition per flush")
            prefix = render_prefix(self.deployed.prefix, {
                "partitionKeyFromLambda:event_type": partition[0],
                "partitionKeyFromLambda:created_date": partition[1],
            })
            body = gzip_lines(lines)
            copies = 2 if self.lose_next_staged_ack else 1
            self.lose_next_staged_ack = False
            for _ in range(copies):
                key = f"{prefix}{self.deployed.stream}-1-{time.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid.uuid4()}.gz"
                if self.tear_next_object:
                    self.tear_next_object = False
                    self.torn[key] = body
                    body = body[:len(body) // 2]
                self.s3.put_object(Bucket=self.deployed.bucket, Key=key, Body=body)
                self.staged.append((key, flush, partition))
                written.append(key)
        if errors:
            prefix = render_prefix(self.deployed.error_prefix, {
                "firehose:error-output-type": "processing-failed",
                "timestamp:yyyy-MM-dd": time.strftime("%Y-%m-%d", time.gmtime()),
            })
            key = f"{prefix}{self.deployed.stream}-1-{time.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid.uuid4()}.gz"
            body = gzip_lines(json.dumps(e).encode() for e in errors)
            self.s3.put_object(Bucket=self.deployed.bucket, Key=key, Body=body)
        self.seconds["stage"] += time.time() - started
        return written


# --- Lambda's SQS event source (the stand-in) and the writer's faulty endpoint ------

class FaultProxy(Forwarder):
    """moto, as the writer reaches it, with faults: `fail(predicate, times)`
    answers the next `times` matching requests with a 503; `hold(predicate)` keeps
    the first matching request waiting until `release()`, with `held` set."""

    def __init__(self, upstream_port):
        self.lock = threading.Lock()
        self.failures = []  # [predicate, remaining]
        self.holding = None
        self.held, self.released = threading.Event(), threading.Event()
        super().__init__(upstream_port)

    def fail(self, predicate, times):
        with self.lock:
            self.failures.append([predicate, times])

    def hold(self, predicate):
        self.held.clear()
        self.released.clear()
        self.holding = predicate

    def release(self):
        self.holding = None
        self.released.set()

    def intercept(self, method, path, headers, body):
        holding = self.holding
        if holding is not None and holding(method, path, headers):
            self.holding = None
            self.held.set()
            self.released.wait(60)
            return 503, {"Content-Type": "application/xml"}, b"<Error><Code>ServiceUnavailable</Code></Error>"
        with self.lock:
            for rule in self.failures:
                if rule[1] > 0 and rule[0](method, path, headers):
                    rule[1] -= 1
                    target = headers.get("x-amz-target", "")
                    if target:
                        return 503, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(
                            {"__type": "InternalServiceException", "message": "injected by the e2e test"}).encode()
                    return 503, {"Content-Type": "application/xml"}, (
                        b"<Error><Code>ServiceUnavailable</Code><Message>injected by the e2e test</Message></Error>")
        return None


def is_lake_put(deployed):
    events = f"/{deployed.bucket}/{deployed.lake_prefix}events/"

    def matches(method, path, headers):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query, keep_blank_values=True)
        return method == "PUT" and path.startswith(events) and not {"tagging", "uploadId"} & set(query)
    return matches


def is_glue(method, path, headers):
    return headers.get("x-amz-target", "").startswith("AWSGlue.")


class WriterEventSource:
    def __init__(self, deployed, endpoint, start_writer):
        self.deployed = deployed
        self.sqs = client(endpoint, "sqs")
        self.start_writer = start_writer
        self.writer = start_writer()
        self.seconds = collections.Counter()
        self.invocations = 0

    def close(self):
        self.writer.close()

    def receive(self):
        messages = []
        while len(messages) < self.deployed.writer_batch_size:
            received = self.sqs.receive_message(
                QueueUrl=self.deployed.queue_url, AttributeNames=["All"], WaitTimeSeconds=1,
                MaxNumberOfMessages=min(10, self.deployed.writer_batch_size - len(messages)),
            ).get("Messages", [])
            if not received:
                break
            messages.extend(received)
        return messages

    def make_visible(self, messages):
        for m in messages:
            self.sqs.change_message_visibility(QueueUrl=self.deployed.queue_url, ReceiptHandle=m["ReceiptHandle"],
                                               VisibilityTimeout=0)

    def invoke(self, messages):
        started = time.time()
        response = self.writer.invoke(sqs_event(messages, self.deployed.queue_arn),
                                           timeout=self.deployed.writer["Timeout"])
        self.seconds["write"] += time.time() - started
        self.invocations += 1
        handed_back = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in handed_back]
        for m in done:
            self.sqs.delete_message(QueueUrl=self.deployed.queue_url, ReceiptHandle=m["ReceiptHandle"])
        self.make_visible([m for m in messages if m["MessageId"] in handed_back])
        return len(handed_back)

    def drain(self, passes=None):
        """Feeds the writer until the queue is empty (or for `passes` batches);
        returns how many messages it handed back."""
        handed_back, count = 0, 0
        while passes is None or count < passes:
            messages = self.receive()
            if not messages:
                break
            handed_back += self.invoke(messages)
            count += 1
        return handed_back

    def kill_during_next_batch(self, proxy, predicate):
        """Feeds one batch and kills the writer when it makes its first request
        that matches `predicate`, mid-object; the batch's messages come back after
        the visibility timeout. Returns the messages of that batch."""
        messages = self.receive()
        assert messages, "nothing to feed the writer"
        proxy.hold(predicate)
        outcome = {}

        def run():
            try:
                self.writer.invoke(sqs_event(messages, self.deployed.queue_arn), timeout=60)
                outcome["finished"] = True
            except Exception as error:  # the sandbox is killed under it
                outcome["error"] = error

        thread = threading.Thread(target=run)
        thread.start()
        assert proxy.held.wait(60), "the writer never made the request to kill it at"
        self.writer.close()
        proxy.release()
        thread.join(60)
        assert "finished" not in outcome, "the writer finished although it was killed"
        self.writer = self.start_writer()
        self.make_visible(messages)
        return messages


# --- What the lake must hold --------------------------------------------------------

class Ledger:
    """The oracle's account: every record sent, and how many staged objects each
    valid event must have reached."""

    def __init__(self, deployed):
        self.deployed = deployed
        self.window = deployed.window()
        self.verdicts = {}

    def judge(self, raw):
        if raw not in self.verdicts:
            self.verdicts[raw] = oracle.verdict(raw, self.window)
        return self.verdicts[raw]

    def expected(self, firehose):
        """From what the stand-in sent to the transform and flushed: how many rows
        each valid event's dedupe key must have (one per staged object that held
        it), the oracle's `Event` of its first copy, and for each rejected record's
        bytes (times sent, reason code, the last recordId it had)."""
        objects = collections.Counter((flush, partition) for _, flush, partition in firehose.staged)
        counts, rows, rejected = collections.Counter(), {}, {}
        seen_in_flush = set()
        for flush, records in firehose.batches:
            for record_id, raw in records.items():
                verdict = self.judge(raw)
                if isinstance(verdict, oracle.Rejected):
                    times = rejected[raw][0] if raw in rejected else 0
                    rejected[raw] = (times + 1, verdict.code, record_id)
                    continue
                rows.setdefault(verdict.key, verdict)
                if (flush, verdict.key) not in seen_in_flush:
                    seen_in_flush.add((flush, verdict.key))
                    counts[verdict.key] += objects[(flush, verdict.partition)]
        return counts, rows, rejected


def list_keys(s3, bucket, prefix=""):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def lake_rows(s3, deployed, work):
    """Every row of the lake's Parquet files as DuckDB reads them (the files
    downloaded from moto: DuckDB's S3 extension is not installable offline)."""
    root = tempfile.mkdtemp(prefix="lake-", dir=work)
    events = f"{deployed.lake_prefix}events/"
    files = list_keys(s3, deployed.bucket, events)
    assert all(k.endswith(".parquet") for k in files), [k for k in files if not k.endswith(".parquet")]
    for key in files:
        path = os.path.join(root, key[len(deployed.lake_prefix):])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(deployed.bucket, key, path)
    if not files:
        return [], set()
    rows = duckdb.sql(f"""
        SELECT event_uuid, event_name, event_subtype, created_at, created_datetime, payload,
               event_type, created_date, epoch_ms(created_ts), epoch_ms(ingested_at), filename
        FROM read_parquet('{root}/events/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false,
                          filename = true)""").fetchall()
    partitions = {tuple(part.split("=", 1)[1] for part in k[len(events):].split("/")[:2]) for k in files}
    shutil.rmtree(root)
    return rows, partitions


def glue_partitions(endpoint, deployed):
    """The deployed table's partitions: values -> location."""
    glue = client(endpoint, "glue")
    found = {}
    for page in glue.get_paginator("get_partitions").paginate(DatabaseName=deployed.glue_database,
                                                              TableName=deployed.glue_table):
        for p in page["Partitions"]:
            found[tuple(p["Values"])] = p["StorageDescriptor"]["Location"]
    return found


def check_lake(endpoint, deployed, ledger, firehose, work):
    """The lake against the oracle: each valid event's rows, the rejected
    records and their reasons, Glue's partitions, and nothing else in the bucket."""
    s3 = client(endpoint, "s3")
    counts, first, rejected = ledger.expected(firehose)
    rows, partitions = lake_rows(s3, deployed, work)

    # ingested_at: when Firehose delivered the staged object the row came from.
    delivered = {int(s3.head_object(Bucket=deployed.bucket, Key=key)["LastModified"].timestamp() * 1000)
                 for key, _, _ in firehose.staged}
    found = collections.Counter()
    for (uuid_, name, subtype, created_at, created_datetime, payload, event_type, created_date, created_ms,
         ingested_ms, _) in rows:
        key = (uuid_, datetime_millis(created_datetime))
        assert created_ms == key[1], f"created_ts {created_ms} is not created_datetime {created_datetime}"
        assert ingested_ms in delivered, f"ingested_at {ingested_ms} is no staged object's delivery time"
        found[key] += 1
        expected = first.get(key)
        assert expected is not None, f"the lake holds an event nobody sent: {uuid_} {created_datetime}"
        actual = {"event_uuid": uuid_, "event_name": name, "event_subtype": subtype, "created_at": created_at,
                  "created_datetime": created_datetime, "payload": oracle.parse_payload(payload)}
        assert actual == expected.row, f"row differs from the input:\n{actual}\n{expected.row}"
        assert (event_type, created_date) == expected.partition, (event_type, created_date, expected.partition)
    lost = [k for k in counts if found[k] == 0]
    assert not lost, f"{len(lost)} valid events are not in the lake, e.g. {lost[:3]}"
    wrong = {k: (found[k], counts[k]) for k in counts if found[k] != counts[k]}
    assert not wrong, (f"{len(wrong)} events are in the lake a wrong number of times (found, expected), "
                       f"e.g. {list(wrong.items())[:3]}")

    registered = glue_partitions(endpoint, deployed)
    assert set(registered) == partitions, (
        f"Glue partitions differ from the files: only in Glue {set(registered) - partitions}, "
        f"only in S3 {partitions - set(registered)}")
    for (event_type, created_date), location in registered.items():
        path = f"{deployed.lake_prefix}events/event_type={event_type}/created_date={created_date}"
        assert location.rstrip("/") == f"s3://{deployed.bucket}/{path}", location

    error_keys = list_keys(s3, deployed.bucket, render_prefix(deployed.error_prefix.split("!{")[0], {}))
    stored = collections.Counter()
    for key in error_keys:
        body = gzip.decompress(s3.get_object(Bucket=deployed.bucket, Key=key)["Body"].read())
        for line in body.splitlines():
            record = json.loads(line)
            assert (record["errorCode"], record["errorMessage"]) == PROCESSING_FAILED, record
            stored[base64.b64decode(record["rawData"])] += 1
    expected_errors = collections.Counter({raw: times for raw, (times, _, _) in rejected.items()})
    assert stored == expected_errors, (
        f"error records differ from the rejected input: {sum(stored.values())} stored, "
        f"{sum(expected_errors.values())} expected; missing {list((expected_errors - stored).items())[:3]}, "
        f"extra {list((stored - expected_errors).items())[:3]}")
    reasons = logged_reasons(firehose.transform_logs + firehose.transform.log_lines())
    wrong_reasons = [(code, reasons.get(record_id), raw[:80]) for raw, (_, code, record_id) in rejected.items()
                     if reasons.get(record_id) != code]
    assert not wrong_reasons, f"rejection reasons differ from the contract's (expected, logged): {wrong_reasons[:5]}"

    rejected_prefix = f"{deployed.lake_prefix}_rejected/"
    everything = list_keys(s3, deployed.bucket)
    assert not [k for k in everything if k.startswith(rejected_prefix)], "the writer rejected records: none expected"
    staged = [k for k in everything if k.startswith(deployed.staging_prefix)]
    untagged = [k for k in staged if tags(s3, deployed.bucket, k) != dict([WRITTEN_TAG])]
    assert not untagged, f"staged objects not marked written: {untagged[:3]}"
    # The typed views' observations, counts and schema files (src/views/publish.rs).
    known = (deployed.staging_prefix, f"{deployed.lake_prefix}events/", deployed.error_prefix.split("!{")[0],
             f"{deployed.lake_prefix}_schemas/")
    strangers = [k for k in everything if not k.startswith(known)]
    assert not strangers, f"unexpected objects in the bucket: {strangers[:5]}"
    return {"events": len(counts), "rows": len(rows), "rejected": sum(expected_errors.values()),
            "partitions": len(partitions)}


def datetime_millis(text):
    """Unix milliseconds of a `created_datetime` (RFC 3339, UTC, `Z`)."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp()) * 1000 + int((fraction + "000")[:3])


def logged_reasons(lines):
    """recordId -> reason code from the transform's `record rejected` log lines."""
    reasons = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        fields = entry.get("fields", entry)
        if "recordId" in fields and "code" in fields:
            reasons[fields["recordId"]] = fields["code"]
    return reasons


# --- The run ------------------------------------------------------------------------

class Pipeline:
    """The deployed stack with the stand-ins around the built Lambdas."""

    def __init__(self, repo, stack, endpoint, deployed, eventlake, cargo_lambda):
        self.endpoint, self.deployed, self.eventlake, self.work = endpoint, deployed, eventlake, stack.work
        self.s3, self.sqs = client(endpoint, "s3"), client(endpoint, "sqs")
        self.proxy = FaultProxy(int(endpoint.rsplit(":", 1)[1]))
        proxied = f"http://127.0.0.1:{self.proxy.port}"
        zips = stack.zips
        self.firehose = FirehoseStandIn(deployed, endpoint, lambda: Emulated(
            cargo_lambda, repo, zips["firehose-transform"], deployed.transform, endpoint, stack.work))
        self.writer = WriterEventSource(deployed, endpoint, lambda: Emulated(
            cargo_lambda, repo, zips["parquet-writer"], deployed.writer, proxied, stack.work))
        self.ledger = Ledger(deployed)
        self.today = datetime.datetime.now(datetime.timezone.utc).date()
        self.compactor = lambda configuration: Emulated(
            cargo_lambda, repo, zips["parquet-writer"], configuration, endpoint, stack.work)

    def close(self):
        self.firehose.close()
        self.writer.close()
        self.proxy.close()

    def events(self, count, seed, days_ago, days=1):
        """Generated records from `days_ago` days before today over `days` days:
        each fault gets days of its own, so its partitions are new (the writer
        registers a partition in Glue once per process)."""
        start = (self.today - datetime.timedelta(days=days_ago)).isoformat()
        return generate(self.eventlake, count, seed, start, days, duplicates=0.02, invalid=0.01)

    def send(self, records, pack_kib=None):
        send(self.eventlake, self.endpoint, self.deployed.stream, records, self.work, pack_kib)

    def assert_queues_empty(self):
        """The staged queue and its DLQ hold no message, visible or in flight."""
        for url in (self.deployed.queue_url, self.deployed.dlq_url):
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            waiting = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
            assert waiting == 0, f"{url} still holds {waiting} messages"

    def compact(self, **settings):
        """One scheduled run of the deployed compactor (the writer's zip in its
        compactor mode, its deployed settings but no wait and no look-back limit,
        unless `settings` say otherwise): its response, seconds, EMF documents and log."""
        configuration = json.loads(json.dumps(self.deployed.compactor, default=str))
        configuration["Environment"]["Variables"].update(
            **{"COMPACT_OLDER_THAN_SECONDS": "0", "COMPACT_LOOKBACK_DAYS": "3650", **settings})
        compactor = self.compactor(configuration)
        try:
            started = time.monotonic()
            response = compactor.invoke(SCHEDULED_EVENT)
            return response, time.monotonic() - started, compactor.documents(), "\n".join(compactor.log_lines())
        finally:
            compactor.close()

    def replay(self):
        """`eventlake replay` of everything under the error prefix into the deployed
        lake, registering partitions in the deployed Glue table: its report."""
        deployed = self.deployed
        lake = f"s3://{deployed.bucket}/{deployed.lake_prefix}".rstrip("/")
        errors = f"s3://{deployed.bucket}/{render_prefix(deployed.error_prefix.split('!{')[0], {})}"
        result = subprocess.run(
            [self.eventlake, "replay", "--lake", lake, "--database", deployed.glue_database,
             "--table", deployed.glue_table, errors],
            capture_output=True, env=self.operator_env(),
        )
        assert result.returncode == 0, f"eventlake replay failed: {result.stderr.decode()}"
        return result.stdout.decode()

    def operator_env(self):
        """An `eventlake` process's environment with the credentials of an operator
        role that has only the stack's operator policy (under enforced IAM)."""
        return moto_env(self.endpoint, ACCESS.policy_env(self.deployed.operator_policy_arn, "eventlake-operator"))

    def compact_cli(self, *extra):
        """`eventlake compact` of the deployed lake as an operator runs it."""
        deployed = self.deployed
        lake = f"s3://{deployed.bucket}/{deployed.lake_prefix}".rstrip("/")
        return subprocess.run(
            [self.eventlake, "compact", "--lake", lake, "--database", deployed.glue_database,
             "--table", deployed.glue_table, *extra],
            capture_output=True, env=self.operator_env(),
        )

    def check(self, what):
        figures = check_lake(self.endpoint, self.deployed, self.ledger, self.firehose, self.work)
        self.assert_queues_empty()
        copies = figures["rows"] - figures["events"]
        print(f"e2e {what}: all {figures['events']} valid events in the lake ({figures['rows']} rows: {copies} "
              f"copies that reached separate staged objects, for events_unique to merge), "
              f"{figures['rejected']} rejected records with their reasons, {figures['partitions']} partitions in Glue")


def baseline(pipeline, events):
    """Two deliveries: the second repeats part of the first (a producer resending)
    besides duplicates within each. Returns the stage timings."""
    records = pipeline.events(events, seed=1, days_ago=2, days=3)
    half = len(records) // 2
    resent = records[:half:50]
    timings = {}
    started = time.time()
    pipeline.send(records[:half])
    timings["put"] = time.time() - started
    pipeline.firehose.deliver()
    staged = time.time()
    pipeline.writer.drain()
    timings["writer"] = time.time() - staged
    pipeline.send(records[half:] + resent)
    pipeline.firehose.deliver()
    pipeline.writer.drain()
    timings["total"] = time.time() - started
    valid = {v.key for r in records if isinstance(v := pipeline.ledger.judge(r), oracle.Event)}
    timings["events"] = len(valid)
    pipeline.check(f"{len(records) + len(resent)} records in two deliveries, {len(resent)} sent again")
    return timings


def transform_timeout(pipeline):
    # One event per record here, packed everywhere else: both paths must give the lake the oracle expects.
    pipeline.send(pipeline.events(3000, seed=2, days_ago=3), pack_kib=0)
    pipeline.firehose.deliver(transform_timeouts=1)
    pipeline.writer.drain()
    pipeline.check("transform timed out once, its batch retried whole")


def lost_acknowledgement(pipeline):
    pipeline.send(pipeline.events(2000, seed=3, days_ago=4))
    pipeline.firehose.lose_next_staged_ack = True
    pipeline.firehose.deliver()
    pipeline.writer.drain()
    pipeline.check("a staged object written twice (lost acknowledgement)")


def writer_killed(pipeline):
    pipeline.send(pipeline.events(2000, seed=4, days_ago=5))
    pipeline.firehose.deliver()
    killed = pipeline.writer.kill_during_next_batch(pipeline.proxy, is_glue)
    pipeline.writer.drain()
    pipeline.check(f"writer killed mid-object (files written, partitions not registered; {len(killed)} messages retried)")


def s3_put_failures(pipeline):
    pipeline.send(pipeline.events(2000, seed=5, days_ago=6))
    pipeline.firehose.deliver()
    # 12 failed PUTs in a row: more than the writer's 5 attempts (src/aws/mod.rs ATTEMPTS)
    # for a file, so at least one object fails and comes back from SQS.
    pipeline.proxy.fail(is_lake_put(pipeline.deployed), 12)
    handed_back = pipeline.writer.drain()
    assert handed_back >= 1, "12 failed PUTs in a row must fail an object"
    pipeline.check(f"S3 PUT failures ({handed_back} objects handed back and retried)")


def glue_outage(pipeline):
    """Glue refuses the writer's calls for as long as its 5 attempts at one
    object take (src/aws/mod.rs ATTEMPTS), with exponential backoff: that object fails after
    its files are written, comes back from SQS and registers its partitions then.
    (A longer outage fails more objects the same way, each waiting its backoff.)"""
    pipeline.send(pipeline.events(2000, seed=6, days_ago=7))
    pipeline.firehose.deliver()
    pipeline.proxy.fail(is_glue, 5)
    handed_back = pipeline.writer.drain()
    assert handed_back >= 1, "a Glue outage must fail the object it meets"
    pipeline.check(f"Glue outage ({handed_back} object registered on its retry)")


def poison_object(pipeline):
    """A torn staged object fails every receive and reaches the DLQ; repaired,
    its new notification writes it, and the redriven old one adds nothing."""
    deployed, sqs, s3 = pipeline.deployed, pipeline.sqs, pipeline.s3
    pipeline.send(pipeline.events(2000, seed=7, days_ago=8))
    pipeline.firehose.tear_next_object = True
    pipeline.firehose.deliver()
    (torn, body), = pipeline.firehose.torn.items()
    for _ in range(4 * deployed.max_receives):  # the other objects of the delivery go first
        pipeline.writer.drain(passes=1)
        attributes = sqs.get_queue_attributes(QueueUrl=deployed.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
        if attributes["Attributes"]["ApproximateNumberOfMessages"] != "0":
            break
    dead = sqs.receive_message(QueueUrl=deployed.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert [{torn}] == [notified_keys(m) for m in dead], f"the DLQ holds {dead}, expected the torn object's message"
    assert tags(s3, deployed.bucket, torn) == {}, "a failed staged object must stay untagged (it must not expire)"
    s3.put_object(Bucket=deployed.bucket, Key=torn, Body=body)
    pipeline.writer.drain()
    # The redrive: what StartMessageMoveTask does, moving the DLQ's messages back.
    for m in dead:
        sqs.send_message(QueueUrl=deployed.queue_url, MessageBody=m["Body"])
        sqs.delete_message(QueueUrl=deployed.dlq_url, ReceiptHandle=m["ReceiptHandle"])
    pipeline.writer.drain()
    pipeline.check(f"poison object: to the DLQ after {deployed.max_receives} receives, repaired, redriven")


def replay_late_events(pipeline):
    """Events older than the deployed window (CREATED_AT_MAX_AGE_DAYS) come back
    ProcessingFailed into errors/; `eventlake replay` with the window open writes
    them into the lake and Glue, everything else errors/ holds stays rejected, and
    a second replay adds nothing. Last: the oracle's account of the lake ends here."""
    deployed, s3 = pipeline.deployed, pipeline.s3
    assert deployed.max_age_days is not None, "the deployed window is on by default"
    late = pipeline.events(1000, seed=8, days_ago=deployed.max_age_days + 10)
    pipeline.send(late)
    pipeline.firehose.deliver()
    pipeline.writer.drain()
    pipeline.check("events past the window rejected into errors/")
    open_window = (time.time(), None, None)
    late_events = {v.key: v for r in late if isinstance(v := oracle.verdict(r, open_window), oracle.Event)}
    before, _ = lake_rows(s3, deployed, pipeline.work)

    report = pipeline.replay()
    rows, partitions = lake_rows(s3, deployed, pipeline.work)
    added = collections.Counter((r[0], datetime_millis(r[4])) for r in rows)
    added.subtract(collections.Counter((r[0], datetime_millis(r[4])) for r in before))
    added = +added
    assert set(added) == set(late_events) and set(added.values()) == {1}, (
        f"replay added {sum(added.values())} rows for {len(late_events)} late events:\n{report}")
    for row in rows:
        key = (row[0], datetime_millis(row[4]))
        if key in late_events:
            assert (row[6], row[7]) == late_events[key].partition, (row, late_events[key].partition)
    assert set(glue_partitions(pipeline.endpoint, deployed)) == partitions, "Glue lacks the replayed partitions"
    files = list_keys(s3, deployed.bucket, f"{deployed.lake_prefix}events/")
    again = pipeline.replay()
    assert "written: 0 events" in again, again
    assert list_keys(s3, deployed.bucket, f"{deployed.lake_prefix}events/") == files, "a second replay wrote files"
    rows_again, _ = lake_rows(s3, deployed, pipeline.work)
    without_file = lambda rows: sorted(row[:-1] for row in rows)  # noqa: E731 (the download path differs)
    assert without_file(rows_again) == without_file(rows), "a second replay changed the lake"
    print(f"e2e replay: {len(late_events)} events past the deployed window replayed from errors/ into the lake "
          f"and Glue, the rest still rejected; a second replay added nothing. Its report:\n"
          + "".join(f"  {line}\n" for line in report.splitlines()))


def athena_rows(pipeline):
    """Every row Athena reads: for each Glue partition, the Parquet files directly in
    its location (read with DuckDB, as lake_rows does), and the files read."""
    deployed, s3 = pipeline.deployed, pipeline.s3
    root = tempfile.mkdtemp(prefix="athena-", dir=pipeline.work)
    files = []
    for (event_type, created_date), location in glue_partitions(pipeline.endpoint, deployed).items():
        prefix = location.split(f"s3://{deployed.bucket}/", 1)[1]
        listing = s3.list_objects_v2(Bucket=deployed.bucket, Prefix=prefix, Delimiter="/").get("Contents", [])
        for key in [o["Key"] for o in listing if o["Key"].endswith(".parquet")]:
            path = os.path.join(root, f"event_type={event_type}", f"created_date={created_date}", key.rsplit("/", 1)[1])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(deployed.bucket, key, path)
            files.append(key)
    rows = duckdb.sql(f"""
        SELECT event_uuid, event_name, event_subtype, created_at, created_datetime, payload,
               event_type, created_date, epoch_ms(created_ts), epoch_ms(ingested_at)
        FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)
        """).fetchall()
    shutil.rmtree(root)
    return rows, files


def late_into_compacted(pipeline):
    """Events of days the compactor merged arrive after it: the writer writes them
    into events/, then settles them into each partition's compacted location
    (reading the location's manifest, which its role must allow: on AWS an
    AccessDenied there sends the object to the DLQ, and once the compactor forgets
    the partition the files are never read). Athena reads each new event once;
    nothing is left in events/ of a compacted partition; both queues are empty."""
    deployed, s3 = pipeline.deployed, pipeline.s3
    compacted = {p for p, location in glue_partitions(pipeline.endpoint, deployed).items() if "/compacted/" in location}
    before, _ = athena_rows(pipeline)
    records = pipeline.events(1500, seed=11, days_ago=2, days=3)
    valid = {v.key for r in records if isinstance(v := pipeline.ledger.judge(r), oracle.Event)}
    pipeline.send(records)
    pipeline.firehose.deliver()
    handed_back = pipeline.writer.drain()
    assert handed_back == 0, f"{handed_back} staged objects failed to settle:\n{pipeline.writer.writer.log()}"
    after, _ = athena_rows(pipeline)
    def key(row):
        return row[0], datetime_millis(row[4])
    known = {key(row) for row in before}
    new = [row for row in after if key(row) not in known]
    assert len({key(row) for row in new}) == len(new) == len(valid), (
        f"{len(new)} new rows for {len(valid)} new events after settling")
    settled = {(row[6], row[7]) for row in new} & compacted
    assert settled, "the late events belong to compacted partitions"
    left = partitions_in_events(pipeline)
    assert not left & compacted, f"files left unsettled in events/: {sorted(left & compacted)[:3]}"
    pipeline.assert_queues_empty()
    print(f"e2e late events into compacted partitions: {len(new)} events settled into {len(settled)} compacted "
          f"locations, each read once, nothing left in events/")


def compaction(pipeline):
    """The deployed compactor (the writer's zip in its compactor mode, its deployed
    settings but no wait and no look-back limit) compacts every partition the test
    wrote: Athena then reads one row per event, the copy received first, every
    partition located under compacted/; the superseded files stay for the grace
    period, and a run after it (a grace of 0 here) deletes them, changing nothing
    Athena reads; a run after that does nothing."""
    deployed, s3 = pipeline.deployed, pipeline.s3
    before, _ = athena_rows(pipeline)
    first = first_copies(before)
    events_prefix = f"{deployed.lake_prefix}events/"
    files_before = set(list_keys(s3, deployed.bucket, events_prefix))
    response, seconds, documents, _ = pipeline.compact()
    assert response["failed"] == 0 and response["deferred"] == 0 and response["compacted"] > 0, response
    assert documents[0]["PartitionsCompacted"] == response["compacted"], documents[0]
    after, files = athena_rows(pipeline)
    assert_first_copies_once(after, first)
    locations = glue_partitions(pipeline.endpoint, deployed)
    merged = {p for p, location in locations.items() if "/compacted/" in location}
    assert len(merged) == response["compacted"], (len(merged), response)
    assert set(list_keys(s3, deployed.bucket, events_prefix)) == files_before, "superseded files went before their grace"

    response, _, _, _ = pipeline.compact(COMPACT_GRACE_SECONDS="0")
    assert response == {"compacted": 0, "failed": 0, "deferred": 0}, response
    left = partitions_in_events(pipeline)
    assert not left & merged, f"superseded files of compacted partitions left in events/: {sorted(left & merged)[:3]}"
    rows_after_grace, _ = athena_rows(pipeline)
    assert sorted(rows_after_grace) == sorted(after), "deleting superseded files changed what Athena reads"
    views = check_typed_views(pipeline, locations)
    glue = client(pipeline.endpoint, "glue")
    records = [p["Values"] for page in glue.get_paginator("get_partitions").paginate(
        DatabaseName=deployed.glue_database, TableName=deployed.glue_table)
        for p in page["Partitions"] if "eventlake_superseded_location" in p.get("Parameters", {})]
    assert not records, f"switches left unfinished: {records[:3]}"
    print(f"e2e compaction: {len(before)} rows in {len(locations)} partitions became {len(after)} rows in "
          f"{len(files)} files ({len(merged)} partitions compacted, the rest one file already) "
          f"in {seconds:.1f} s; each event once, the first received copy; superseded files kept for the grace "
          f"period, then deleted by the next run without changing what Athena reads; {views}")


TRINO = {"boolean": "boolean", "bigint": "bigint", "double": "double", "timestamp": "timestamp(3)",
         "varchar": "varchar", "json": "varchar"}
HIVE = {"boolean": "boolean", "bigint": "bigint", "double": "double", "timestamp": "timestamp",
        "varchar": "string", "json": "string"}
LEADING = [("event_uuid", "varchar", "string"), ("event_name", "varchar", "string"),
           ("event_subtype", "varchar", "string"), ("created_at", "bigint", "bigint"),
           ("created_datetime", "varchar", "string"), ("created_ts", "timestamp(3)", "timestamp"),
           ("ingested_at", "timestamp(3)", "timestamp"), ("created_date", "varchar", "string")]


def view_types(name):
    """A schema file's column type as the view definition (Trino) and Glue (Hive) name it."""
    if name.startswith("array("):
        inner = name[len("array("):-1]
        return f"array({TRINO[inner]})", f"array<{HIVE[inner]}>"
    return TRINO[name], HIVE[name]


def check_typed_views(pipeline, locations):
    """After a compaction run: every type of the lake has its schema file in
    _schemas/ and its view in Glue as Athena stores one (the Trino definition
    with the view's SELECT and columns, the Hive columns); the writers'
    observations are folded (none left); and the schema files are the ones
    `eventlake views` writes from scratch on a copy of the partitions' current
    files (every partition is compacted or one file, so the counts are exact)."""
    deployed, s3 = pipeline.deployed, pipeline.s3
    glue = client(pipeline.endpoint, "glue")
    schemas_prefix = f"{deployed.lake_prefix}_schemas/"
    keys = list_keys(s3, deployed.bucket, schemas_prefix)
    assert not [k for k in keys if k.startswith(f"{schemas_prefix}_observed/")], "observations not folded"
    schema_keys = [k for k in keys if "/" not in k[len(schemas_prefix):] and not k.endswith(".declared.json")]
    types = {values[0] for values in locations}
    schemas = {}
    for key in schema_keys:
        schema = json.loads(s3.get_object(Bucket=deployed.bucket, Key=key)["Body"].read())
        schemas[schema["event_type"]] = (key, schema)
    assert set(schemas) == types, (sorted(schemas), sorted(types))
    for event_type, (_, schema) in schemas.items():
        view = glue.get_table(DatabaseName=deployed.glue_database, Name=schema["view"])["Table"]
        assert view["TableType"] == "VIRTUAL_VIEW" and view["Parameters"]["presto_view"] == "true", view
        text = view["ViewOriginalText"]
        definition = json.loads(base64.b64decode(text[len("/* Presto View: "):-len(" */")]))
        assert definition["catalog"] == "awsdatacatalog" and definition["schema"] == deployed.glue_database
        assert definition["originalSql"].startswith("SELECT event_uuid,"), definition["originalSql"][:80]
        assert definition["originalSql"].endswith(f"FROM events_unique\nWHERE event_type = '{event_type}'")
        fields = [f for f in schema["fields"] if f["column"] is not None]
        expected = LEADING + [(f["column"], *view_types(f["type"])) for f in fields]
        assert [(c["name"], c["type"]) for c in definition["columns"]] == [(n, t) for n, t, _ in expected]
        glue_columns = [(c["Name"], c["Type"]) for c in view["StorageDescriptor"]["Columns"]]
        assert glue_columns == [(n, h) for n, _, h in expected], glue_columns
    # From scratch: the partitions' current files, as a local lake.
    root = tempfile.mkdtemp(prefix="views-", dir=pipeline.work)
    for (event_type, created_date), location in locations.items():
        prefix = location[len(f"s3://{deployed.bucket}/"):].rstrip("/") + "/"
        for key in list_keys(s3, deployed.bucket, prefix):
            if key.endswith(".parquet") and "/" not in key[len(prefix):]:
                path = os.path.join(root, "events", f"event_type={event_type}", f"created_date={created_date}",
                                    key[len(prefix):])
                os.makedirs(os.path.dirname(path), exist_ok=True)
                s3.download_file(deployed.bucket, key, path)
    subprocess.run([pipeline.eventlake, "views", "--lake", root], check=True, stdout=subprocess.DEVNULL)
    for event_type, (key, _) in schemas.items():
        with open(os.path.join(root, "_schemas", f"{event_type}.json"), "rb") as f:
            local = f.read()
        deployed_bytes = s3.get_object(Bucket=deployed.bucket, Key=key)["Body"].read()
        assert deployed_bytes == local, f"{key} differs from a run from scratch:\n{deployed_bytes[:400]}\n{local[:400]}"
    shutil.rmtree(root)
    return (f"{len(schemas)} typed views in Glue, their schema files the same as a run of eventlake views "
            f"from scratch on the partitions' files")


def partitions_in_events(pipeline):
    """The partitions (event_type, created_date) with any object under events/."""
    deployed = pipeline.deployed
    events_prefix = f"{deployed.lake_prefix}events/"
    return {tuple(part.split("=", 1)[1] for part in k[len(events_prefix):].split("/")[:2])
            for k in list_keys(pipeline.s3, deployed.bucket, events_prefix)}


def first_copies(rows):
    """Per key (event_uuid, created_datetime's instant): the row compaction keeps,
    the one with the earliest ingested_at (then the smallest, for a total order)."""
    first = {}
    for row in rows:
        key = (row[0], datetime_millis(row[4]))
        if key not in first or (row[9], row[:9]) < (first[key][9], first[key][:9]):
            first[key] = row
    return first


def assert_first_copies_once(rows, first):
    """Athena's `rows` hold each key of `first` once, the first copy received."""
    kept = {(row[0], datetime_millis(row[4])): row for row in rows}
    assert len(kept) == len(rows), f"{len(rows) - len(kept)} keys are read more than once after compaction"
    assert set(kept) == set(first), "compaction lost or added events"
    for key, row in kept.items():
        expected = first[key]
        assert row[:8] == expected[:8] and row[9] == expected[9], (
            f"compaction kept another copy than the first received:\n{row}\n{expected}")


def compaction_outside_the_look_back(pipeline):
    """The deployed compactor against a second runner, late copies and stranded
    files (issue 29). While another runner holds the lake's lease (a laptop's
    `eventlake compact`), a scheduled run changes nothing and says so. Then copies of
    events the lake holds arrive late (a producer resending) and the writer settles
    them into compacted partitions, and a writer file is left in events/ of one
    (a write around the pipeline): Athena reads them at once. Scheduled runs whose
    look-back leaves those days out hand the stranded file over and merge every
    such partition again: one row per key, the first copy received, nothing left in
    events/ of a compacted partition, no mark left in _settled/."""
    deployed, s3 = pipeline.deployed, pipeline.s3
    before, _ = athena_rows(pipeline)
    first = first_copies(before)
    lease_key = f"{deployed.lake_prefix}_leases/compaction.json"
    now_millis = int(time.time() * 1000)
    lease = json.dumps({"holder": "eventlake compact on a laptop", "acquired_at_millis": now_millis,
                        "expires_at_millis": now_millis + 600_000})
    s3.put_object(Bucket=deployed.bucket, Key=lease_key, Body=lease.encode())
    response, _, _, log = pipeline.compact()
    assert response == {"compacted": 0, "failed": 0, "deferred": 0}, response
    assert "compaction run skipped" in log and "eventlake compact on a laptop" in log, log
    assert s3.get_object(Bucket=deployed.bucket, Key=lease_key)["Body"].read().decode() == lease
    s3.delete_object(Bucket=deployed.bucket, Key=lease_key)
    assert sorted(athena_rows(pipeline)[0]) == sorted(before), "a refused run changed what Athena reads"

    locations = glue_partitions(pipeline.endpoint, deployed)
    compacted = {p for p, location in locations.items() if "/compacted/" in location}
    resent = pipeline.events(1500, seed=11, days_ago=2, days=3)[::10]
    pipeline.send(resent)
    pipeline.firehose.deliver()
    handed_back = pipeline.writer.drain()
    assert handed_back == 0, f"{handed_back} staged objects failed:\n{pipeline.writer.writer.log()}"
    stranded_partition = sorted(compacted)[0]
    location = locations[stranded_partition].split(f"s3://{deployed.bucket}/", 1)[1]
    part = next(k for k in list_keys(s3, deployed.bucket, location) if k.endswith(".parquet"))
    event_type, created_date = stranded_partition
    stranded = (f"{deployed.lake_prefix}events/event_type={event_type}/created_date={created_date}/"
                f"{'e' * 32}.parquet")
    s3.copy_object(Bucket=deployed.bucket, Key=stranded, CopySource={"Bucket": deployed.bucket, "Key": part})
    with_copies, _ = athena_rows(pipeline)
    assert len(with_copies) > len(before), "the late copies are read"
    copies = len(with_copies) - len(before)

    runs = []
    for _ in range(4):
        response, _, documents, log = pipeline.compact(COMPACT_LOOKBACK_DAYS="0", COMPACT_GRACE_SECONDS="0")
        assert response["failed"] == 0 and response["deferred"] == 0, (
            response, [line for line in log.splitlines() if "not compacted" in line][:3])
        runs.append((response["compacted"], documents[0]["StrandedFiles"]))
        if response["compacted"] == 0:
            break
    assert runs[-1][0] == 0, f"still compacting after {len(runs)} runs: {runs}"
    after, _ = athena_rows(pipeline)
    assert_first_copies_once(after, first)
    left = partitions_in_events(pipeline)
    assert not left & compacted, f"files left in events/ of compacted partitions: {sorted(left & compacted)[:3]}"
    marks = list_keys(s3, deployed.bucket, f"{deployed.lake_prefix}_settled/")
    assert not marks, f"marks left: {marks[:3]}"
    # An operator's `eventlake compact` with the stack's operator policy: it takes the
    # lease, finds nothing left to do, and releases it.
    result = pipeline.compact_cli("--older-than", "0s")
    assert result.returncode == 0, result.stderr.decode()
    compacted_now = re.search(r"^\s*compacted\s+(\d+)\s*$", result.stdout.decode(), re.M)
    assert compacted_now and compacted_now.group(1) == "0", result.stdout.decode()
    assert not list_keys(s3, deployed.bucket, lease_key), "the lease released"
    print(f"e2e compaction outside the look-back: a run refused while another held the lease; {copies} late "
          f"copies and a stranded file read at once, then merged by runs that left those days out "
          f"(partitions compacted per run, stranded files counted: {runs}); one row per key, the first copy")


def compaction_after_a_stopped_run(pipeline):
    """A compaction stopped after uploading its parts (before its manifest and its
    switch), then a run with another target size: the second run writes into the
    same directory (it is named after the inputs) and must switch to exactly its
    own parts and manifest, not to the stopped run's parts as well (rows twice for
    Athena). The partition is loaded by an operator's `eventlake ingest
    --database` (two inputs, several MiB: several parts at a 1 MiB target); the
    stopped run is the deployed compactor's run at 1 MiB with its manifest
    deleted and its switch undone, which is what a run killed after its uploads
    leaves; the second run is the deployed compactor at 128 MiB."""
    deployed, s3 = pipeline.deployed, pipeline.s3
    day = (pipeline.today - datetime.timedelta(days=20)).isoformat()
    lake = f"s3://{deployed.bucket}/{deployed.lake_prefix}".rstrip("/")
    keys = set()
    for seed in (21, 22):
        records = generate(pipeline.eventlake, 40_000, seed, day, 1, duplicates=0.02, invalid=0, types=1)
        path = os.path.join(pipeline.work, f"big-{seed}.ndjson")
        with open(path, "wb") as f:
            f.write(b"\n".join(records) + b"\n")
        keys |= {(str(uuid.UUID(e["event_uuid"])), e["created_at"]) for e in map(json.loads, records)}
        event_type = json.loads(records[0])["event_name"].split(":")[0]
        result = subprocess.run(
            [pipeline.eventlake, "ingest", "--quiet", "--lake", lake, "--database", deployed.glue_database,
             "--table", deployed.glue_table, path],
            capture_output=True, env=pipeline.operator_env(),
        )
        assert result.returncode == 0, result.stderr.decode()
    partition = (event_type, day)
    original = glue_partitions(pipeline.endpoint, deployed)[partition]

    response, _, _, _ = pipeline.compact(COMPACT_TARGET_MIB="1")
    assert response["failed"] == 0, response
    location = glue_partitions(pipeline.endpoint, deployed)[partition]
    prefix = location.split(f"s3://{deployed.bucket}/", 1)[1]
    parts = [k for k in list_keys(s3, deployed.bucket, prefix) if k.endswith(".parquet")]
    assert "/compacted/" in location and len(parts) >= 2, (location, parts)
    # What a run killed after its uploads leaves: its parts, no manifest, no switch.
    s3.delete_object(Bucket=deployed.bucket, Key=f"{prefix}_inputs.json")
    glue = client(pipeline.endpoint, "glue")
    current = glue.get_partition(DatabaseName=deployed.glue_database, TableName=deployed.glue_table,
                                 PartitionValues=list(partition))["Partition"]
    descriptor = dict(current["StorageDescriptor"], Location=original)
    glue.update_partition(DatabaseName=deployed.glue_database, TableName=deployed.glue_table,
                          PartitionValueList=list(partition),
                          PartitionInput={"Values": list(partition), "StorageDescriptor": descriptor, "Parameters": {}})

    response, _, _, _ = pipeline.compact(COMPACT_TARGET_MIB="128")
    assert response["failed"] == 0 and response["compacted"] >= 1, response
    assert glue_partitions(pipeline.endpoint, deployed)[partition] == location, "the same inputs, the same directory"
    names = sorted(k.rsplit("/", 1)[1] for k in list_keys(s3, deployed.bucket, prefix))
    assert len(names) == 2 and names[0] == "_inputs.json" and names[1].endswith("-00000.parquet"), names
    rows = [row for row in athena_rows(pipeline)[0] if (row[6], row[7]) == partition]
    read = {(row[0], row[3]) for row in rows}
    assert len(rows) == len(read) == len(keys), (len(rows), len(read), len(keys))
    print(f"e2e compaction after a stopped run: {len(parts)} parts of a 1 MiB run left without manifest or switch; "
          f"the 128 MiB run switched to its one part and manifest only: {len(rows)} rows, one per key")


def stream_events(endpoint, stream):
    """Every piece of every record the stream holds that is an event of the
    contract (section 1; no time window: tail writes what the stream holds), read
    here with the SDK from each shard's oldest record."""
    kinesis = client(endpoint, "kinesis")
    events = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while True:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            for record in response["Records"]:
                for piece in record["Data"].split(b"\n"):
                    piece = piece.strip(b" \t\r\n")
                    if piece and isinstance(oracle.verdict(piece, (time.time(), None, None)), oracle.Event):
                        events.append(piece)
            if not response["Records"]:
                break
            iterator = response["NextShardIterator"]
    return events


def tail_as_a_consumer(pipeline):
    """`eventlake tail` as a role with only the stack's consumer policy (under
    enforced IAM), its positions in the deployed checkpoint table: every event
    the stream holds once; a second run writes nothing."""
    deployed = pipeline.deployed
    env = moto_env(pipeline.endpoint, ACCESS.policy_env(deployed.consumer_policy_arn, "eventlake-consumer"))
    command = [pipeline.eventlake, "tail", "--stream", deployed.stream, "--checkpoint",
               f"dynamodb://{deployed.tail_checkpoint_table}", "--no-follow", "--quiet"]
    first = subprocess.run(command, capture_output=True, env=env)
    assert first.returncode == 0, f"eventlake tail failed: {first.stderr.decode()}"
    written = first.stdout.splitlines()
    expected = stream_events(pipeline.endpoint, deployed.stream)
    assert sorted(written) == sorted(expected), (len(written), len(expected))
    again = subprocess.run(command, capture_output=True, env=env)
    assert again.returncode == 0 and again.stdout == b"", again.stderr.decode()
    print(f"e2e tail: {len(written)} events of the stream written once by a consumer role with the consumer policy, "
          f"its positions in DynamoDB table {deployed.tail_checkpoint_table}; a second run wrote nothing")


def report(timings, pipeline):
    deployed, firehose, writer = pipeline.deployed, pipeline.firehose.seconds, pipeline.writer.seconds
    processing = timings["put"] + firehose["read"] + firehose["transform"] + firehose["stage"] + writer["write"]
    print(f"e2e throughput: {timings['events']} events of the first two deliveries in {timings['total']:.1f} s "
          f"from the first PutRecords to the last Parquet file and Glue partition: "
          f"{timings['events'] / timings['total']:.0f} events/s on this machine")
    print(f"e2e time by stage over the whole test: PutRecords {timings['put']:.1f} s (first delivery), "
          f"GetRecords {firehose['read']:.1f} s, transform {firehose['transform']:.1f} s, staging to S3 "
          f"{firehose['stage']:.1f} s, writer (Parquet, Glue, tagging) {writer['write']:.1f} s in "
          f"{pipeline.writer.invocations} invocations")
    waits = deployed.processor_seconds + deployed.buffer_seconds + deployed.writer_batching_seconds
    print(f"e2e freshness on AWS with these settings: up to {deployed.processor_seconds} s processor buffer + "
          f"{deployed.buffer_seconds} s Firehose buffering + {deployed.writer_batching_seconds} s SQS batching "
          f"window = {waits} s of buffering, besides processing (here {processing:.0f} s for all the test's data)")


def run(stack, endpoint, out, state, repo, eventlake, cargo_lambda, events):
    """The whole test on a stack already applied to moto at `endpoint`, with IAM
    enforced: each Lambda runs as its deployed role."""
    assert not stack.missing_zips, f"no {stack.missing_zips} zip: run make build"
    with ACCESS.enforced(endpoint):
        run_enforced(stack, endpoint, out, state, repo, eventlake, cargo_lambda, events)


def run_enforced(stack, endpoint, out, state, repo, eventlake, cargo_lambda, events):
    deployed = Deployed(endpoint, out, state)
    pipeline = None
    with StagingOpen(client(endpoint, "s3"), client(endpoint, "lambda"), deployed.bucket, deployed.mapping_uuid):
        try:
            pipeline = Pipeline(repo, stack, endpoint, deployed, eventlake, cargo_lambda)
            timings = baseline(pipeline, events)
            for fault in (transform_timeout, lost_acknowledgement, writer_killed, s3_put_failures, glue_outage,
                          poison_object, replay_late_events, compaction, late_into_compacted,
                          compaction_outside_the_look_back, compaction_after_a_stopped_run, tail_as_a_consumer):
                fault(pipeline)
            report(timings, pipeline)
        finally:
            if pipeline is not None:
                pipeline.close()


def main():
    repo, zips, eventlake, moto_server = sys.argv[1:5]
    moto, endpoint = start_moto(moto_server)
    stack = Stack(repo, zips, endpoint)
    try:
        plugin_dir = os.environ.get("TF_PLUGIN_DIR")
        stack.terraform("init", "-backend=false", "-input=false", *([f"-plugin-dir={plugin_dir}"] if plugin_dir else []))
        started = time.time()
        stack.terraform("apply", "-auto-approve", *stack.vars)
        print(f"e2e: stack applied to moto in {time.time() - started:.0f} s")
        state = json.loads(stack.terraform("show", "-json").stdout)
        out = {k: v["value"] for k, v in json.loads(stack.terraform("output", "-json").stdout).items()}
        run(stack, endpoint, out, state, repo, eventlake, cargo_lambda_path(moto_server), events_from_env())
        stack.terraform("destroy", "-auto-approve", *stack.vars)
    finally:
        moto.kill()
        moto.wait()
        shutil.rmtree(stack.work, ignore_errors=True)


def events_from_env():
    return int(os.environ.get("E2E_EVENTS", "20000"))


if __name__ == "__main__":
    main()
