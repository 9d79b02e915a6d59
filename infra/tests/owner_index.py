#!/usr/bin/env python3
"""The owner index in the transformed templates, variant by variant: what the table, the
outputs and the example app's environment become for each OwnerIndex value, on an
on-demand and a provisioned table, created or existing (the other parameters at their
defaults). Run by .ci/infra.sh on target/infra/template.json and app-template.json.

Neither cfn-lint nor MiniStack catches the mistakes this is for: an index key missing from
AttributeDefinitions when the names are parameters (cfn-lint's E3039 compares literal
names only), or an index without ProvisionedThroughput on a provisioned table (DynamoDB
refuses both at deploy time; MiniStack creates the table anyway).

With OwnerIndex disabled: no GlobalSecondaryIndexes, the key alone in AttributeDefinitions
(the table exactly as before the parameter existed), an empty SessionsOwnerIndexName and
an empty SESSION_OWNER_INDEX. Enabled, on a table the stack creates: exactly one index,
named OwnerIndexName, partition key OwnerAttributeName (S, in AttributeDefinitions beside
the key and nothing else), no sort key, Projection KEYS_ONLY, and ProvisionedThroughput
equal to the table's when the table is provisioned, absent on demand; the output and
SESSION_OWNER_INDEX name it. The index name's AllowedPattern is DynamoDB's rule, and the
app stack's owner parameters match the sessions stack's.

(The app policy's Query statement is check_iam.py's, in both variants.)

Then it checks itself: each of a few mutants of the same templates (the owner's attribute
definition dropped, the index's throughput dropped, projection ALL, an added sort key,
the index in the disabled variant, the output or SESSION_OWNER_INDEX not following
OwnerIndex) must fail, with its own message, so a check that stopped checking is seen.

Usage: owner_index.py TEMPLATE.json [APP_TEMPLATE.json]
"""

import copy
import itertools
import json
import re
import sys

NO_VALUE = object()

# DynamoDB's index names: [a-zA-Z0-9_.-]+, 3 to 255 characters.
INDEX_NAMES_VALID = ["owner-index", "abc", "a.b_c-1", "x" * 255]
INDEX_NAMES_INVALID = ["", "ab", "x" * 256, "owner index", "owner*", "owner?", "owner/index"]


class Variant:
    """A template's values, intrinsics resolved, for fixed parameter values."""

    def __init__(self, template, values):
        self.template = template
        self.parameters = template.get("Parameters") or {}
        self.conditions = template.get("Conditions") or {}
        self.values = {name: str(spec["Default"]) for name, spec in self.parameters.items() if "Default" in spec}
        self.values.update(values)

    def condition(self, name):
        return self.truth(self.conditions[name])

    def truth(self, node):
        (key, arg), = node.items()
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
        if key == "Fn::Not":
            return not self.truth(arg[0])
        if key == "Fn::And":
            return all(self.truth(a) for a in arg)
        if key == "Fn::Or":
            return any(self.truth(a) for a in arg)
        raise ValueError(f"condition {json.dumps(node)}")

    def resolve(self, node):
        """Fn::If and Refs to parameters resolved, AWS::NoValue dropped; other intrinsics
        (GetAtt, Sub, ...) kept as they are."""
        if isinstance(node, list):
            return [v for v in (self.resolve(n) for n in node) if v is not NO_VALUE]
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, then, other = node["Fn::If"]
                return self.resolve(then if self.condition(name) else other)
            if set(node) == {"Ref"}:
                if node["Ref"] == "AWS::NoValue":
                    return NO_VALUE
                if node["Ref"] in self.values:
                    return self.values[node["Ref"]]
            resolved = {k: self.resolve(v) for k, v in node.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        return node

    def resource(self, logical):
        resource = (self.template.get("Resources") or {}).get(logical)
        if resource is None or ("Condition" in resource and not self.condition(resource["Condition"])):
            return None
        return self.resolve(resource.get("Properties") or {})

    def output(self, name):
        return self.resolve(self.template["Outputs"][name]["Value"])


class Check:
    def __init__(self):
        self.failures = []
        self.count = 0

    def __call__(self, condition, what, detail=None):
        self.count += 1
        if not condition:
            self.failures.append(f"{what}" + (f": {json.dumps(detail, default=str)}" if detail is not None else ""))


def table_variants(template, check):
    params = template.get("Parameters") or {}
    owner_values = [str(v) for v in params["OwnerIndex"]["AllowedValues"]]
    billing_values = [str(v) for v in params["BillingMode"]["AllowedValues"]]
    check(sorted(owner_values) == ["disabled", "enabled"] and params["OwnerIndex"].get("Default") in owner_values,
          "OwnerIndex takes enabled or disabled", params["OwnerIndex"])
    lines = []
    for owner, billing, existing in itertools.product(owner_values, billing_values, ["", "existing-sessions"]):
        v = Variant(template, {"OwnerIndex": owner, "BillingMode": billing, "ExistingTableName": existing})
        label = f"OwnerIndex={owner} BillingMode={billing} ExistingTableName={existing or '(empty)'}"
        enabled = owner == "enabled"
        key, attr, index = v.values["KeyAttributeName"], v.values["OwnerAttributeName"], v.values["OwnerIndexName"]
        table = v.resource("SessionsTable")
        check((table is None) == bool(existing), f"{label}: the stack creates the table iff ExistingTableName is empty")
        check(v.output("SessionsOwnerIndexName") == (index if enabled else ""),
              f"{label}: output SessionsOwnerIndexName is {repr(index) if enabled else 'empty'}",
              v.output("SessionsOwnerIndexName"))
        if table is None:
            lines.append(f"{label}: no table created (the index on an existing table is the operator's)")
            continue
        check(table.get("KeySchema") == [{"AttributeName": key, "KeyType": "HASH"}], f"{label}: the table's key",
              table.get("KeySchema"))
        definitions = [{"AttributeName": key, "AttributeType": "S"}]
        if enabled:
            definitions.append({"AttributeName": attr, "AttributeType": "S"})
        check(table.get("AttributeDefinitions") == definitions,
              f"{label}: AttributeDefinitions are exactly {[d['AttributeName'] for d in definitions]} (S)",
              table.get("AttributeDefinitions"))
        gsis = table.get("GlobalSecondaryIndexes")
        if not enabled:
            check("GlobalSecondaryIndexes" not in table, f"{label}: no GlobalSecondaryIndexes", gsis)
            check("LocalSecondaryIndexes" not in table, f"{label}: no LocalSecondaryIndexes")
            lines.append(f"{label}: no index; AttributeDefinitions {[d['AttributeName'] for d in definitions]}")
            continue
        check(isinstance(gsis, list) and len(gsis) == 1, f"{label}: exactly one global secondary index", gsis)
        if not (isinstance(gsis, list) and len(gsis) == 1):
            continue
        gsi = gsis[0]
        check(gsi.get("IndexName") == index, f"{label}: the index is named OwnerIndexName ({index})", gsi.get("IndexName"))
        check(gsi.get("KeySchema") == [{"AttributeName": attr, "KeyType": "HASH"}],
              f"{label}: its partition key is OwnerAttributeName ({attr}), no sort key", gsi.get("KeySchema"))
        check(gsi.get("Projection") == {"ProjectionType": "KEYS_ONLY"}, f"{label}: its projection is KEYS_ONLY",
              gsi.get("Projection"))
        if billing == "PROVISIONED":
            check(gsi.get("ProvisionedThroughput") is not None
                  and gsi.get("ProvisionedThroughput") == table.get("ProvisionedThroughput"),
                  f"{label}: a provisioned table's index has the table's ProvisionedThroughput",
                  [gsi.get("ProvisionedThroughput"), table.get("ProvisionedThroughput")])
        else:
            check("ProvisionedThroughput" not in gsi and "ProvisionedThroughput" not in table,
                  f"{label}: on demand, no ProvisionedThroughput on the table or the index", gsi)
        check(set(gsi) <= {"IndexName", "KeySchema", "Projection", "ProvisionedThroughput"},
              f"{label}: nothing else on the index", sorted(gsi))
        lines.append(f"{label}: index {gsi['IndexName']} on {attr} (HASH), {gsi['Projection']['ProjectionType']}"
                     + (f", throughput {json.dumps(gsi['ProvisionedThroughput'])}" if "ProvisionedThroughput" in gsi else "")
                     + f"; AttributeDefinitions {[d['AttributeName'] for d in definitions]}")
    return lines


def parameter_rules(template, check, where):
    params = template.get("Parameters") or {}
    pattern = params["OwnerIndexName"].get("AllowedPattern", "(?s:.*)")
    for name in INDEX_NAMES_VALID:
        check(re.fullmatch(pattern, name), f"{where}: OwnerIndexName's AllowedPattern accepts {name[:20]!r}"
              + ("..." if len(name) > 20 else ""))
    for name in INDEX_NAMES_INVALID:
        check(not re.fullmatch(pattern, name), f"{where}: OwnerIndexName's AllowedPattern refuses {name[:20]!r}"
              + ("..." if len(name) > 20 else ""))
    check(params["OwnerAttributeName"].get("AllowedPattern") == params["KeyAttributeName"].get("AllowedPattern"),
          f"{where}: OwnerAttributeName follows the other attribute names' rule")


def app_variants(sessions, app, check):
    lines = []
    sp, ap = sessions["Parameters"], app["Parameters"]
    for name in ("OwnerIndex", "OwnerAttributeName", "OwnerIndexName"):
        same = {k: sp[name].get(k) for k in ("Default", "AllowedValues", "AllowedPattern")} == \
            {k: ap[name].get(k) for k in ("Default", "AllowedValues", "AllowedPattern")}
        check(same, f"app stack: {name} has the sessions stack's default and rule", [sp[name], ap[name]])
    functions = [logical for logical, r in app["Resources"].items() if r.get("Type") == "AWS::Lambda::Function"]
    check(functions, "app stack: a Lambda function")
    for owner in ap["OwnerIndex"]["AllowedValues"]:
        v = Variant(app, {"OwnerIndex": owner})
        for logical in functions:
            env = v.resource(logical).get("Environment", {}).get("Variables", {})
            expected = {"SESSION_OWNER_ATTRIBUTE": v.values["OwnerAttributeName"],
                        "SESSION_OWNER_INDEX": v.values["OwnerIndexName"] if owner == "enabled" else ""}
            got = {k: env.get(k) for k in expected}
            check(got == expected, f"app stack, OwnerIndex={owner}: {logical}'s environment", got)
            lines.append(f"app OwnerIndex={owner}: {logical} gets {json.dumps(got)}")
    return lines


def run(sessions, app):
    check = Check()
    lines = table_variants(sessions, check)
    parameter_rules(sessions, check, "sessions stack")
    if app is not None:
        parameter_rules(app, check, "app stack")
        lines += app_variants(sessions, app, check)
    return check, lines


# ---------------------------------------------------------------- mutants
def table_properties(template):
    return template["Resources"]["SessionsTable"]["Properties"]


def index_if(template):
    """The Fn::If of the table's GlobalSecondaryIndexes."""
    return table_properties(template)["GlobalSecondaryIndexes"]["Fn::If"]


def the_index(template):
    (gsi,) = index_if(template)[1]
    return gsi


def drop_owner_definition(t, _):
    definitions = table_properties(t)["AttributeDefinitions"]
    definitions[:] = [d for d in definitions if not (isinstance(d, dict) and "Fn::If" in d)]


def drop_index_throughput(t, _):
    del the_index(t)["ProvisionedThroughput"]


def project_all(t, _):
    the_index(t)["Projection"] = {"ProjectionType": "ALL"}


def add_sort_key(t, _):
    the_index(t)["KeySchema"].append({"AttributeName": {"Ref": "KeyAttributeName"}, "KeyType": "RANGE"})


def index_when_disabled(t, _):
    branches = index_if(t)
    branches[2] = copy.deepcopy(branches[1])


def output_always(t, _):
    t["Outputs"]["SessionsOwnerIndexName"]["Value"] = {"Ref": "OwnerIndexName"}


def app_index_always(_, app):
    for resource in app["Resources"].values():
        variables = (resource.get("Properties") or {}).get("Environment", {}).get("Variables", {})
        if "SESSION_OWNER_INDEX" in variables:
            variables["SESSION_OWNER_INDEX"] = {"Ref": "OwnerIndexName"}


MUTANTS = [
    (drop_owner_definition, "AttributeDefinitions are exactly ['id', 'owner']"),
    (drop_index_throughput, "a provisioned table's index has the table's ProvisionedThroughput"),
    (project_all, "its projection is KEYS_ONLY"),
    (add_sort_key, "no sort key"),
    (index_when_disabled, "OwnerIndex=disabled BillingMode=PAY_PER_REQUEST ExistingTableName=(empty): no GlobalSecondaryIndexes"),
    (output_always, "OwnerIndex=disabled BillingMode=PAY_PER_REQUEST ExistingTableName=(empty): output SessionsOwnerIndexName is empty"),
    (app_index_always, "app stack, OwnerIndex=disabled: AppFunction's environment"),
]


def self_test(sessions, app):
    """Problems with the check itself: a mutant it passed, or failed for another reason."""
    problems = []
    for mutate, expected in MUTANTS:
        if app is None and mutate is app_index_always:
            continue
        s, a = copy.deepcopy(sessions), copy.deepcopy(app)
        try:
            mutate(s, a)
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"mutant {mutate.__name__}: cannot make it ({e!r}); update MUTANTS with the template")
            continue
        check, _ = run(s, a)
        if not any(expected in failure for failure in check.failures):
            problems.append(f"mutant {mutate.__name__} was not rejected with {expected!r}; "
                            f"failures: {check.failures}")
    return problems


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        sessions = json.load(f)
    app = None
    if len(argv) == 3:
        with open(argv[2], encoding="utf-8") as f:
            app = json.load(f)
    check, lines = run(sessions, app)
    for line in lines:
        print(f"    {line}")
    if check.failures:
        print(f"owner index check FAILED: {len(check.failures)} of {check.count} checks", file=sys.stderr)
        for failure in check.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"    ok: the owner index, {check.count} checks over every variant")
    problems = self_test(sessions, app)
    if problems:
        print("owner index check FAILED its self-test:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"    ok: each of {len(MUTANTS) if app is not None else len(MUTANTS) - 1} mutants of these templates "
          "is rejected, for its own reason")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
