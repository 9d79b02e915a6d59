#!/usr/bin/env python3
"""The deployed system, end to end, in a local AWS (MiniStack): run by .ci/e2e.sh, which
builds with `sam build`, starts MiniStack and exports AWS_ENDPOINT_URL.

What it does, in order, each step a check that fails the run:

1. `sam deploy` the sessions stack (infra/template.yaml, unchanged) with 2 slices, the
   schedule disabled, a fixed read cap (SweepMaxReadUnitsPerSecond) and the owner index
   (OwnerIndex=enabled), and `sam deploy` the example app's stack (infra/app/template.yaml,
   OwnerIndex=enabled too). Each slice function has the read cap in its environment and
   an event invoke config with no retries. The deployed table (DescribeTable) has the
   owner index: HASH key `owner` (S, in AttributeDefinitions), KEYS_ONLY; the deployed app
   policy (IAM GetPolicyVersion) allows dynamodb:Query on that index's ARN and nowhere
   else; the app's environment names the attribute and the index.
2. The app: a visit / visit / logout cycle with a cookie jar, through the HTTP API when
   the emulator serves it, else (saying what fails) through direct invokes of the app's
   Lambda with HTTP API v2 events. The table holds the session after each visit and
   nothing after the logout.
3. Seeds the table in the store's own item format (the shape of the item the app just
   wrote): expired, live, in-grace, malformed and foreign (another app's prefix, and a
   reserved key) items; some expired and some live ones have an owner, and a Query of
   the owner index (keys only) lists exactly those.
4. Invokes both slice functions directly: together their reports delete exactly the
   expired items, each once, and the table agrees; each report's read_cap_per_second is
   the deployed cap. The owner index then lists only the live owned sessions.
5. Sends a bad event: it fails with SweepError.InvalidConfig, and the errors alarm of that
   slice goes to ALARM.
6. Enables the schedule (a second `sam deploy`, an update), seeds a second batch and waits
   for the schedule to sweep it: both slices' runs appear in the shared log group, each
   publishing BacklogSeconds per FunctionName (its backlog alarm's dimension).
7. `sam delete` both stacks.

The last line is one result line: `e2e: PASS ...` or `e2e: FAIL ...`.

Usage: e2e.py --sessions-build DIR --app-build DIR --state DIR
"""

import argparse
import base64
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookies import SimpleCookie

import boto3

REGION = "us-east-1"
SESSIONS_STACK = "e2e-sessions"
APP_STACK = "e2e-sessions-app"
KEY_PREFIX = "e2e:"
TOTAL_SEGMENTS = 8
SLICES = 2
GRACE_SECONDS = 900  # the in-grace items (expired 5 s before seeding) stay in grace for the whole run
SCHEDULE_TIMEOUT_S = 240
ALARM_TIMEOUT_S = 120
# A fixed read cap (units per second per slice) instead of the default "auto", so that
# each run's report can be checked against it.
READ_CAP_PER_SECOND = 50
# The owner index, at the templates' default names (OwnerAttributeName, OwnerIndexName).
OWNER_ATTRIBUTE = "owner"
OWNER_INDEX = "owner-index"
OWNER = "e2e-user-42"

started = time.monotonic()
checks = []


class Failed(Exception):
    pass



def hashed_key(session_id):
    """The store's table key of a session id (dynamo_session_store::schema::KeyMode::Hashed):
    the key prefix, `~`, then base64url (unpadded) of SHA-256 of the domain and the id."""
    digest = hashlib.sha256(b"dynamo-session-store/id/v1\0" + session_id.encode()).digest()
    return KEY_PREFIX + "~" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

def log(message):
    print(f"[e2e {time.monotonic() - started:6.1f}s] {message}", flush=True)


def check(condition, what, detail=""):
    if not condition:
        raise Failed(f"{what}{': ' + str(detail) if detail else ''}")
    checks.append(what)
    log(f"ok: {what}")


def run(args, log_path):
    """Runs a command, its output to log_path; on failure, shows the log's tail."""
    log("$ " + " ".join(args))
    t = time.monotonic()
    with open(log_path, "a", encoding="utf-8") as out:
        code = subprocess.call(args, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        with open(log_path, encoding="utf-8") as f:
            tail = f.read()[-4000:]
        raise Failed(f"`{' '.join(args[:3])} ...` exited with {code}; its output ends with:\n{tail}")
    log(f"  done in {time.monotonic() - t:.1f}s")


def outputs(cfn, stack):
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def physical_id(cfn, stack, logical):
    return cfn.describe_stack_resource(StackName=stack, LogicalResourceId=logical)[
        "StackResourceDetail"]["PhysicalResourceId"]


def deploy_sessions(args, schedule_enabled):
    run(["sam", "deploy", "--template-file", os.path.join(args.sessions_build, "template.yaml"),
         "--stack-name", SESSIONS_STACK, "--region", REGION, "--resolve-s3",
         "--capabilities", "CAPABILITY_IAM", "--language-extensions", "--no-confirm-changeset", "--no-fail-on-empty-changeset", "--no-progressbar",
         "--parameter-overrides",
         f"SweepSlices={SLICES}", f"SweepTotalSegments={TOTAL_SEGMENTS}",
         f"SweepGraceSeconds={GRACE_SECONDS}", f"KeyPrefix={KEY_PREFIX}",
         'SweepSchedule="rate(1 minute)"',
         f"SweepMaxReadUnitsPerSecond={READ_CAP_PER_SECOND}",
         # Every deploy, the update too: leaving it out would drop the index.
         "OwnerIndex=enabled",
         f"SweepScheduleEnabled={'true' if schedule_enabled else 'false'}"],
        os.path.join(args.state, "deploy-sessions.log"))


# ---------------------------------------------------------------- table helpers
def scan_all(ddb, table):
    pages = ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return {item["id"]["S"]: item for page in pages for item in page["Items"]}


def owned_keys(ddb, table, owner):
    """The keys the owner index lists for `owner`, as the store asks: the owner's
    partition, keys only."""
    pages = ddb.get_paginator("query").paginate(
        TableName=table, IndexName=OWNER_INDEX, KeyConditionExpression="#o = :owner",
        ProjectionExpression="#k", ExpressionAttributeNames={"#o": OWNER_ATTRIBUTE, "#k": "id"},
        ExpressionAttributeValues={":owner": {"S": owner}})
    return sorted(item["id"]["S"] for page in pages for item in page["Items"])


def policy_statements(iam, arn):
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])[
        "PolicyVersion"]["Document"]
    if isinstance(document, str):  # IAM's URL-encoded JSON, when botocore left it so
        document = json.loads(urllib.parse.unquote(document))
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def as_list(value):
    return value if isinstance(value, list) else [value]


def check_owner_index(ddb, iam, lam, out, app_function):
    """The deployed owner index, the app policy's Query on it, and the app's settings."""
    table = ddb.describe_table(TableName=out["SessionsTableName"])["Table"]
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes") or []}
    log(f"  DescribeTable GlobalSecondaryIndexes: {json.dumps(list(indexes.values()), default=str)}")
    check(list(indexes) == [OWNER_INDEX], f"the table has one global secondary index, {OWNER_INDEX}", list(indexes))
    index = indexes[OWNER_INDEX]
    check(index["KeySchema"] == [{"AttributeName": OWNER_ATTRIBUTE, "KeyType": "HASH"}],
          f"its key is {OWNER_ATTRIBUTE} (HASH), no sort key", index["KeySchema"])
    check(index["Projection"].get("ProjectionType") == "KEYS_ONLY" and not index["Projection"].get("NonKeyAttributes"),
          "its projection is KEYS_ONLY", index["Projection"])
    check({"AttributeName": OWNER_ATTRIBUTE, "AttributeType": "S"} in table["AttributeDefinitions"],
          f"{OWNER_ATTRIBUTE} is defined as a String attribute", table["AttributeDefinitions"])
    check(out.get("SessionsOwnerIndexName") == OWNER_INDEX, "the stack's SessionsOwnerIndexName output names it",
          out.get("SessionsOwnerIndexName"))
    index_arn = f"{table['TableArn']}/index/{OWNER_INDEX}"
    statements = policy_statements(iam, out["AppTablePolicyArn"])
    queries = [s for s in statements if "dynamodb:Query" in as_list(s.get("Action", []))]
    check(len(queries) == 1 and queries[0]["Effect"] == "Allow" and as_list(queries[0]["Action"]) == ["dynamodb:Query"]
          and as_list(queries[0]["Resource"]) == [index_arn] and "Condition" not in queries[0],
          f"the deployed app policy allows dynamodb:Query on {index_arn} alone, in one statement", queries)
    env = lam.get_function_configuration(FunctionName=app_function)["Environment"]["Variables"]
    owner_env = {k: env.get(k) for k in ("SESSION_OWNER_ATTRIBUTE", "SESSION_OWNER_INDEX")}
    check(owner_env == {"SESSION_OWNER_ATTRIBUTE": OWNER_ATTRIBUTE, "SESSION_OWNER_INDEX": OWNER_INDEX},
          "the app's environment names the owner attribute and index", owner_env)


def put_all(ddb, table, items):
    for item in items:
        ddb.put_item(TableName=table, Item=item)


def shape(item):
    return {name: next(iter(value)) for name, value in item.items()}


# ---------------------------------------------------------------- the example app
class HttpApi:
    """Requests through the HTTP API, as a browser would."""

    def __init__(self, url):
        self.url = url
        self.jar = SimpleCookie()

    def request(self, method, path):
        req = urllib.request.Request(self.url.rstrip("/") + path, method=method)
        cookie = "; ".join(f"{k}={m.value}" for k, m in self.jar.items())
        if cookie:
            req.add_header("Cookie", cookie)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            resp = opener.open(req, timeout=30)
            status, headers, body = resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, headers, body = e.code, e.headers, e.read().decode()
        for value in headers.get_all("Set-Cookie") or []:
            self.jar.load(value)
        return status, dict(headers), body


class DirectInvoke:
    """The same requests as HTTP API payload format 2.0 events, invoked on the Lambda."""

    def __init__(self, lam, function):
        self.lam = lam
        self.function = function
        self.jar = SimpleCookie()

    def request(self, method, path):
        cookies = [f"{k}={m.value}" for k, m in self.jar.items()]
        event = {
            "version": "2.0", "routeKey": f"{method} {path}", "rawPath": path,
            "rawQueryString": "", "headers": {"host": "e2e.example", "accept": "text/html"},
            "requestContext": {
                "accountId": "000000000000", "apiId": "e2e", "domainName": "e2e.example",
                "domainPrefix": "e2e", "requestId": f"e2e-{random.randrange(1 << 30)}",
                "routeKey": f"{method} {path}", "stage": "$default", "time": "01/Dec/2026:00:00:00 +0000",
                "timeEpoch": int(time.time() * 1000),
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "e2e"},
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        resp = self.lam.invoke(FunctionName=self.function, Payload=json.dumps(event).encode())
        payload = json.loads(resp["Payload"].read())
        if resp.get("FunctionError"):
            raise Failed(f"the app's Lambda failed: {payload}")
        for value in payload.get("cookies") or []:
            self.jar.load(value)
        return payload.get("statusCode"), payload.get("headers") or {}, payload.get("body") or ""


def app_cycle(cfn, lam, apigw, ddb, table, state):
    """visit, visit, logout; returns the shape of the item the store wrote."""
    out = outputs(cfn, APP_STACK)
    api_id = out["AppHttpApiId"]
    routes = apigw.get_routes(ApiId=api_id)["Items"]
    api_url = f"{os.environ['AWS_ENDPOINT_URL'].rstrip('/')}/_aws/execute-api/{api_id}/$default"
    if routes:
        log(f"the HTTP API has routes {[r['RouteKey'] for r in routes]}: driving it over HTTP")
        client = HttpApi(api_url)
        state["app_path"] = "HTTP API"
    else:
        # What fails, shown rather than assumed: the request, and the API as deployed.
        status, _, body = HttpApi(api_url).request("GET", "/")
        integrations = apigw.get_integrations(ApiId=api_id)["Items"]
        log(f"the HTTP API {api_id} is not served: GET / answers {status} {body.strip()}; "
            f"the deployed API has {len(routes)} routes and {len(integrations)} integrations "
            "(the SAM transform puts them in the Api's OpenAPI Body, which this emulator "
            "does not import for HTTP APIs). Falling back to direct invokes of the app's "
            "Lambda with HTTP API v2 events.")
        check(status == 404, "the unserved HTTP API answers 404", status)
        client = DirectInvoke(lam, out["AppFunctionName"])
        state["app_path"] = "direct invoke (HTTP API v2 events)"

    status, _, body = client.request("GET", "/")
    check(status == 200 and 'id="visits">1<' in body, "first visit counts 1", (status, body[:200]))
    check(len(client.jar) == 1, "the first visit sets one cookie", list(client.jar))
    (morsel,) = client.jar.values()
    key = hashed_key(morsel.value)
    check(morsel.value not in key, "the table key is the id's hash, not the cookie", key)

    def stored():
        return ddb.get_item(TableName=table, Key={"id": {"S": key}}, ConsistentRead=True).get("Item")

    item = stored()
    check(item is not None, "the session is in the table under the app's key prefix")
    check(json.loads(item["data"]["S"]).get("visits") == 1, "the stored data says 1 visit", item["data"])
    check(int(item["expires"]["N"]) > time.time(), "the stored expiry is epoch seconds in the future",
          item["expires"])

    status, _, body = client.request("GET", "/")
    check(status == 200 and 'id="visits">2<' in body, "second visit counts 2", (status, body[:200]))
    item = stored()
    check(json.loads(item["data"]["S"]).get("visits") == 2, "the stored data says 2 visits", item["data"])

    status, headers, _ = client.request("POST", "/reset")
    location = {k.lower(): v for k, v in headers.items()}.get("location")
    check(status == 303 and location == "/", "logout redirects to /", (status, headers))
    check(stored() is None, "logout deleted the session's item")
    return shape(item)


# ---------------------------------------------------------------- the sweeper
def session_item(key, expires, owner=None):
    item = {"id": {"S": key}, "expires": {"N": str(int(expires))}, "data": {"S": '{"visits":1}'}}
    if owner is not None:
        item[OWNER_ATTRIBUTE] = {"S": owner}
    return item


def seed_first_batch(now):
    expired = [session_item(f"{KEY_PREFIX}expired-{i:03}", now - 3600 - i) for i in range(40)]
    # Owned sessions, in the owner index: the sweep deletes the expired ones (and so their
    # index entries) like any other.
    expired += [session_item(f"{KEY_PREFIX}owned-expired-{i:03}", now - 3600 - i, OWNER) for i in range(6)]
    live = [session_item(f"{KEY_PREFIX}live-{i:03}", now + 3600) for i in range(10)]
    live += [session_item(f"{KEY_PREFIX}owned-live-{i:03}", now + 3600, OWNER) for i in range(3)]
    in_grace = [session_item(f"{KEY_PREFIX}grace-{i:03}", now - 5) for i in range(10)]
    malformed = [
        {"id": {"S": f"{KEY_PREFIX}malformed-string"}, "expires": {"S": "tomorrow"}, "data": {"S": "{}"}},
        {"id": {"S": f"{KEY_PREFIX}malformed-missing"}, "data": {"S": "{}"}},
        {"id": {"S": f"{KEY_PREFIX}malformed-bool"}, "expires": {"BOOL": True}, "data": {"S": "{}"}},
    ]
    foreign = [session_item(f"other-app:expired-{i}", now - 3600) for i in range(5)]
    foreign += [session_item(f"{KEY_PREFIX}!other-tool/state-{i}", now - 3600) for i in range(2)]
    return expired, live + in_grace + malformed + foreign


def invoke(lam, function, event):
    resp = lam.invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return resp.get("FunctionError"), json.loads(resp["Payload"].read())


def sweeper_log_lines(logs, group, since_ms):
    pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=since_ms)
    return [event["message"] for page in pages for event in page.get("events", [])]


def emf_function_names(lines):
    """The FunctionName of every EMF metrics line that publishes BacklogSeconds per
    function, the metric and dimensions of the slice's backlog alarm."""
    names = set()
    for line in lines:
        if not line.lstrip().startswith("{") or '"_aws"' not in line:
            continue
        emf = json.loads(line)
        for directive in emf["_aws"]["CloudWatchMetrics"]:
            if directive["Dimensions"] == [["TableName", "FunctionName"]] and \
                    {"Name": "BacklogSeconds", "Unit": "Seconds"} in directive["Metrics"]:
                names.add(emf.get("FunctionName"))
    return names


def finished_runs(lines):
    """(slice, deleted, scanned) of every 'sweep finished' log line."""
    runs = []
    for line in lines:
        if "sweep finished" not in line:
            continue
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        runs.append((fields.get("slice"), int(fields.get("deleted", -1)), int(fields.get("scanned", -1))))
    return runs


def nudge_alarm_evaluation(cw):
    """MiniStack evaluates alarms when a PutMetricData call arrives, not when Lambda records
    its own AWS/Lambda metrics (CloudWatch evaluates every period): one data point in a
    namespace of the test's own has them evaluated now."""
    cw.put_metric_data(Namespace="E2E/Probe", MetricData=[{"MetricName": "Tick", "Value": 1.0}])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions-build", required=True)
    parser.add_argument("--app-build", required=True)
    parser.add_argument("--state", required=True)
    args = parser.parse_args()
    state = {}

    session = boto3.session.Session(region_name=REGION)
    cfn, lam, ddb = session.client("cloudformation"), session.client("lambda"), session.client("dynamodb")
    apigw, cw, logs = session.client("apigatewayv2"), session.client("cloudwatch"), session.client("logs")
    iam = session.client("iam")
    scheduler = session.client("scheduler")
    deployed = []
    try:
        # 1. deploy
        deploy_sessions(args, schedule_enabled=False)
        deployed.append(SESSIONS_STACK)
        out = outputs(cfn, SESSIONS_STACK)
        table = out["SessionsTableName"]
        functions = [out[f"SweeperFunction{i}Name"] for i in range(SLICES)]
        check(len(functions) == SLICES and all(functions), f"the stack has {SLICES} slice functions", out)
        slices = {f: lam.get_function_configuration(FunctionName=f)["Environment"]["Variables"]["SWEEP_SLICE"]
                  for f in functions}
        check(sorted(slices.values()) == ["0/2", "1/2"], "their SWEEP_SLICE are 0/2 and 1/2", slices)
        caps = {f: lam.get_function_configuration(FunctionName=f)["Environment"]["Variables"].get(
            "SWEEP_MAX_READ_UNITS_PER_SECOND") for f in functions}
        check(set(caps.values()) == {str(READ_CAP_PER_SECOND)},
              f"their SWEEP_MAX_READ_UNITS_PER_SECOND is the deployed {READ_CAP_PER_SECOND}", caps)
        retries = {f: lam.get_function_event_invoke_config(FunctionName=f, Qualifier="$LATEST").get(
            "MaximumRetryAttempts") for f in functions}
        check(set(retries.values()) == {0}, "a failed run is not retried (EventInvokeConfig MaximumRetryAttempts 0)",
              retries)
        backlog = {}
        for i, function in enumerate(functions):
            name = physical_id(cfn, SESSIONS_STACK, f"SweeperBacklogAlarm{i}")
            alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
            backlog[function] = (alarm["MetricName"], {d["Name"]: d["Value"] for d in alarm["Dimensions"]})
        check(all(metric == "BacklogSeconds" and dims == {"TableName": table, "FunctionName": function}
                  for function, (metric, dims) in backlog.items()),
              "each slice's backlog alarm watches BacklogSeconds of its table and function", backlog)
        states = {s["Name"]: s["State"] for s in scheduler.list_schedules()["Schedules"]
                  if s["Name"].startswith(SESSIONS_STACK + "-")}
        check(states == {f"{SESSIONS_STACK}-session-sweeper-{i}": "DISABLED" for i in range(4)},
              "4 slice schedules, all disabled for now", states)
        run(["sam", "deploy", "--template-file", os.path.join(args.app_build, "template.yaml"),
             "--stack-name", APP_STACK, "--region", REGION, "--resolve-s3",
             "--capabilities", "CAPABILITY_IAM", "--no-confirm-changeset", "--no-fail-on-empty-changeset", "--no-progressbar",
             "--parameter-overrides", f"SessionsStackName={SESSIONS_STACK}", f"KeyPrefix={KEY_PREFIX}",
             "OwnerIndex=enabled"],
            os.path.join(args.state, "deploy-app.log"))
        deployed.append(APP_STACK)
        check_owner_index(ddb, iam, lam, out, outputs(cfn, APP_STACK)["AppFunctionName"])

        # 2. the example app
        app_shape = app_cycle(cfn, lam, apigw, ddb, table, state)

        # 3. seed
        now = int(time.time())
        expired, kept = seed_first_batch(now)
        check(shape(expired[0]) == app_shape, "the seeded items have the shape of the store's own item",
              (shape(expired[0]), app_shape))
        put_all(ddb, table, expired + kept)
        before = scan_all(ddb, table)
        check(len(before) == len(expired) + len(kept), f"seeded {len(expired)} expired and {len(kept)} others",
              len(before))
        owned = sorted(i["id"]["S"] for i in expired + kept if OWNER_ATTRIBUTE in i)
        check(owned_keys(ddb, table, OWNER) == owned,
              f"a keys-only Query of {OWNER_INDEX} lists exactly the {len(owned)} owned sessions",
              owned_keys(ddb, table, OWNER))

        # 4. direct invokes of both slices
        reports = []
        for function in functions:
            error, report = invoke(lam, function, {})
            check(error is None, f"slice {slices[function]} invocation succeeds", report)
            log(f"  report: {json.dumps({k: report.get(k) for k in ('slice', 'scanned', 'deleted', 'already_gone', 'malformed_skipped', 'read_units', 'write_units', 'read_cap_per_second', 'complete')})}")
            reports.append(report)
        check(sorted(r["slice"] for r in reports) == ["0-4of8", "4-8of8"], "the two slices are segments 0-4 and 4-8",
              [r["slice"] for r in reports])
        check(all(r["complete"] and r["segments_failed"] == 0 and not r["errors"] for r in reports),
              "both runs are complete, with no failed segment")
        check(all(r.get("read_cap_per_second") == READ_CAP_PER_SECOND for r in reports),
              f"each run's read cap in force is the deployed SweepMaxReadUnitsPerSecond, {READ_CAP_PER_SECOND}",
              [r.get("read_cap_per_second") for r in reports])
        deleted = sum(r["deleted"] for r in reports)
        check(deleted == len(expired), f"the reports delete exactly the {len(expired)} expired items", deleted)
        check(all(r["deleted"] > 0 for r in reports), "each slice deleted some",
              [r["deleted"] for r in reports])
        check(sum(r["already_gone"] for r in reports) == 0, "no item was deleted twice (already_gone is 0)")
        check(sum(r["malformed_skipped"] for r in reports) == 3, "the 3 malformed items are reported, not deleted",
              [r["malformed_skipped"] for r in reports])
        after = scan_all(ddb, table)
        check(set(after) == {i["id"]["S"] for i in kept}, "the table holds exactly the live, in-grace, "
              "malformed and foreign items", sorted(set(before) - set(after))[:5])
        owned_live = sorted(i["id"]["S"] for i in kept if OWNER_ATTRIBUTE in i)
        check(owned_keys(ddb, table, OWNER) == owned_live,
              f"after the sweep the owner index lists only the {len(owned_live)} live owned sessions",
              owned_keys(ddb, table, OWNER))

        # 5. bad event -> InvalidConfig -> errors alarm
        alarm = physical_id(cfn, SESSIONS_STACK, "SweeperErrorsAlarm0")
        nudge_alarm_evaluation(cw)
        value = cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]
        check(value != "ALARM", "before the bad event, the errors alarm is not in ALARM", value)
        error, payload = invoke(lam, functions[0], {"total_segment": 4})
        check(error is not None and payload.get("errorType") == "SweepError.InvalidConfig",
              "a bad event fails with SweepError.InvalidConfig", payload)
        check("total_segment" in payload.get("errorMessage", ""), "the error names the bad field", payload)
        deadline = time.monotonic() + ALARM_TIMEOUT_S
        while True:
            nudge_alarm_evaluation(cw)
            value = cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]
            if value == "ALARM" or time.monotonic() > deadline:
                break
            time.sleep(2)
        check(value == "ALARM", "the slice's errors alarm goes to ALARM", value)

        # 6. the schedule sweeps a second batch
        since_ms = int(time.time() * 1000)
        deploy_sessions(args, schedule_enabled=True)
        states = {s["Name"]: s["State"] for s in scheduler.list_schedules()["Schedules"]
                  if s["Name"].startswith(SESSIONS_STACK + "-")}
        check([states[f"{SESSIONS_STACK}-session-sweeper-{i}"] for i in range(4)] ==
              ["ENABLED", "ENABLED", "DISABLED", "DISABLED"],
              "the update enables the 2 slices' schedules, and only those", states)
        now = int(time.time())
        second = [session_item(f"{KEY_PREFIX}scheduled-{i:03}", now - 3600) for i in range(30)]
        put_all(ddb, table, second)
        t = time.monotonic()
        while time.monotonic() - t < SCHEDULE_TIMEOUT_S:
            left = set(scan_all(ddb, table)) & {i["id"]["S"] for i in second}
            lines = sweeper_log_lines(logs, f"/aws/lambda/{SESSIONS_STACK}-sweeper", since_ms)
            runs = finished_runs(lines)
            if not left and {"0-4of8", "4-8of8"} <= {r[0] for r in runs}:
                break
            time.sleep(3)
        log(f"  after {time.monotonic() - t:.0f}s: {len(left)} of the second batch left; scheduled runs "
            f"(slice, deleted, scanned): {runs}")
        check(not left, f"the schedule swept the second batch ({len(second)} items)", len(left))
        check({"0-4of8", "4-8of8"} <= {r[0] for r in runs}, "both slices ran on the schedule", runs)
        check(sum(r[1] for r in runs) == len(second),
              "the scheduled runs' logs count each of the second batch once", runs)
        check(emf_function_names(lines) == set(functions),
              "each slice's EMF line publishes BacklogSeconds per FunctionName (its alarm's dimension)",
              emf_function_names(lines))
        after = scan_all(ddb, table)
        check(set(after) == {i["id"]["S"] for i in kept}, "nothing else was touched")
        state["schedule_s"] = round(time.monotonic() - t)

        # 7. delete
        for stack in (APP_STACK, SESSIONS_STACK):
            run(["sam", "delete", "--stack-name", stack, "--region", REGION, "--no-prompts"],
                os.path.join(args.state, "delete.log"))
            deployed.remove(stack)
            gone = [s for s in cfn.list_stacks()["StackSummaries"]
                    if s["StackName"] == stack and s["StackStatus"] != "DELETE_COMPLETE"]
            check(not gone, f"sam delete removed {stack}", gone)
        tables = ddb.list_tables()["TableNames"]
        check(table in tables, "the sessions table is retained (DeletionPolicy: Retain)", tables)
    except Failed as e:
        for stack in deployed:
            log(f"(leaving {stack}: MiniStack is stopped next, with everything in it)")
        print(f"e2e: FAIL after {len(checks)} checks in {time.monotonic() - started:.0f}s: {e}", flush=True)
        return 1
    print(f"e2e: PASS, {len(checks)} checks in {time.monotonic() - started:.0f}s "
          f"(app via {state['app_path']}; schedule swept both slices in {state['schedule_s']}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
