#!/usr/bin/env python3
"""Checks the IAM of a CloudFormation template (normally the SAM transform's output).

Rules (each violation is printed; the exit status is 1 if there is any):

1. No wildcard (`*` or `?`) in any Action or Resource of any policy statement in the
   template: inline role policies, managed policies, trust policies, resource policies,
   and the Action of every AWS::Lambda::Permission. NotAction and NotResource are refused.
   Intrinsics are resolved symbolically: `Fn::If` yields both branches (a statement under
   `Fn::If` too: whatever either branch could grant), `Fn::Sub` and `Fn::Join` are
   expanded, a parameter counts as a wildcard unless its AllowedPattern or AllowedValues
   rule out `*` and `?`.
   The one exception is CloudWatch Logs: a Lambda function's own log streams. Lambda
   names streams at run time and CloudWatch Logs authorises CreateLogStream and
   PutLogEvents on `arn:...:log-group:NAME:*`, so exactly that ARN is allowed when NAME
   is a log group created in this template and the statement grants nothing but
   logs:CreateLogStream and logs:PutLogEvents.
2. Roles attach no managed policy from outside the template (those could not be
   checked; AWSLambdaBasicExecutionRole, for one, grants `arn:aws:logs:*:*:*`), with one
   exception in `--app-stack` mode: the sessions stack's own app policy, imported as
   `Fn::ImportValue: ${<SessionsStackName>}-AppTablePolicyArn` (rule 4 checks it there).
3. Every sweeper function (logical id matching `--sweeper-function`, one per slice) has a
   role granting exactly the sweeper contract (infra CONTRACT): dynamodb:Scan,
   dynamodb:PartiQLDelete, and (its startup check) dynamodb:DescribeTable and
   DescribeTimeToLive on the sessions table, with no condition; dynamodb:GetItem, PutItem and
   DeleteItem on it only under `ForAllValues:StringLike` `dynamodb:LeadingKeys`
   `<KeyPrefix>!sweeper-checkpoint/*`; CreateLogStream and PutLogEvents on the log group
   in the function's LoggingConfig. Nothing else, and nothing missing.
4. The app policy allows exactly GetItem, PutItem, UpdateItem and DeleteItem on the
   sessions table, only under `ForAllValues:StringLike` `dynamodb:LeadingKeys`
   `<KeyPrefix>*` (with an empty prefix, `*`: every key), and denies exactly those four
   on it under `ForAnyValue:StringLike` `dynamodb:LeadingKeys` `<KeyPrefix>*!*`: no
   session key holds `!`, so those are reserved keys, the sweeper's checkpoints among
   them; and, in an Allow statement of their own with no condition, exactly
   dynamodb:DescribeTable and DescribeTimeToLive on the sessions table (DynamoStore's
   startup check; no item key to condition on). With the owner index enabled
   (`--owner-index-parameter`, OwnerIndex, equal to `--owner-index-enabled-value`), one
   more Allow of its own: exactly dynamodb:Query, with no condition, on the owner index
   `<sessions table>/index/<OwnerIndexName>` only (never the table, never a wildcard);
   with it disabled, no dynamodb:Query at all. No other condition, no other action
   (`dynamodb:Describe*` among them). In `--app-stack` mode (the example app's own template),
   rules 3 and 4 are replaced by: every role attaches that imported policy and grants
   nothing but its own log streams.
5. The key prefix parameter, where the template has one (both modes), follows the table
   contract's rule, on which the LeadingKeys patterns rely: its AllowedPattern accepts
   every prefix of KEY_PREFIXES_VALID and none of KEY_PREFIXES_INVALID (empty, or no `!`,
   `*` or `?` and a last character that is neither a letter nor a digit).

The sessions table is either the template's table resource (`--table`) or the ARN built
from the existing-table parameter (`--existing-table-parameter`).

Variants: when the template has the owner-index parameter, rules 3 and 4 (or the app-role
rule) are checked once per value in its AllowedValues, with every condition that value
decides evaluated (`Fn::If` then takes one branch; a condition that depends on another
parameter, such as CreateTable, still yields both). A statement under an `Fn::If` whose
condition the variant does not decide is an error there: those rules count exactly what
is granted. Each message of a variant starts with it, e.g. `[OwnerIndex=enabled]`.

Usage: check_iam.py [options] TEMPLATE (JSON, or YAML with short-form intrinsics)
"""

import argparse
import itertools
import json
import re
import sys

WILDCARDS = ("*", "?")
LOG_STREAM_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
PSEUDO = {"AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::URLSuffix", "AWS::StackName", "AWS::StackId"}
CHECKPOINT_SUFFIX = "!sweeper-checkpoint/*"
APP_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
# Listing an owner's sessions: a Query on the owner index, and only there.
QUERY_ACTION = "dynamodb:Query"
# The startup check's (the sweeper's on every cold start, DynamoStore::check_table() in
# apps): table metadata, no item key, so allowed with no condition, and nothing broader.
DESCRIBE_ACTIONS = {"dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive"}
# The app policy's conditions: (operator, LeadingKeys pattern after the key prefix).
APP_ALLOW_KEYS = ("ForAllValues:StringLike", "*")
APP_DENY_KEYS = ("ForAnyValue:StringLike", "*!*")
# Rule 5, probes of the key prefix parameter's AllowedPattern (store/src/schema.rs).
KEY_PREFIXES_VALID = ["", "app:", "app#", "app/", "app1 ", "my-app_2."]
KEY_PREFIXES_INVALID = {
    "app": "it ends with a letter, so its keys include those of app2",
    "app1": "it ends with a digit, so its keys include those of app12",
    "a!b:": "it holds !, which marks reserved keys",
    "app:!": "it holds !, which marks reserved keys",
    "app*:": "it holds an IAM wildcard",
    "app?:": "it holds an IAM wildcard",
}


class Unresolvable(Exception):
    pass


def load(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        return json.loads(text)
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(text)


class Resolver:
    """Turns a CloudFormation value into every string it can take, symbolically; with a
    variant (parameter values it fixes), an `Fn::If` whose condition those decide takes
    only its branch."""

    def __init__(self, template, variant=None):
        self.parameters = template.get("Parameters") or {}
        self.resources = template.get("Resources") or {}
        self.conditions = template.get("Conditions") or {}
        self.variant = variant or {}

    def condition(self, name, seen=()):
        """True or False when the variant decides the condition `name`, else None."""
        if not isinstance(name, str) or name in seen or name not in self.conditions:
            return None
        return self.evaluate(self.conditions[name], seen + (name,))

    def evaluate(self, node, seen=()):
        if not (isinstance(node, dict) and len(node) == 1):
            return None
        (key, arg), = node.items()
        if key == "Condition":
            return self.condition(arg, seen)
        if key == "Fn::Equals" and isinstance(arg, list) and len(arg) == 2:
            a, b = (self.fixed(x) for x in arg)
            return None if a is None or b is None else a == b
        if key == "Fn::Not" and isinstance(arg, list) and len(arg) == 1:
            value = self.evaluate(arg[0], seen)
            return None if value is None else not value
        if key in ("Fn::And", "Fn::Or") and isinstance(arg, list):
            values = [self.evaluate(x, seen) for x in arg]
            decisive = key == "Fn::Or"  # one True decides an Or, one False an And
            if decisive in values:
                return decisive
            return None if None in values else not decisive
        return None

    def fixed(self, node):
        """A literal, or a parameter the variant fixes; None for anything else."""
        if isinstance(node, str):
            return node
        if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in self.variant:
            return self.variant[node["Ref"]]
        return None

    def param_is_wildcard_free(self, name):
        spec = self.parameters.get(name) or {}
        if "AllowedValues" in spec:
            return all(not any(w in str(v) for w in WILDCARDS) for v in spec["AllowedValues"])
        pattern = spec.get("AllowedPattern")
        if pattern is None:
            return False
        probes = ["*", "?", "a*", "*a", "a?", "a*b", "a?b"]
        return not any(re.fullmatch(pattern, p) for p in probes)

    def ref(self, name):
        if name in PSEUDO:
            return "{%s}" % name
        if name in self.parameters:
            if self.param_is_wildcard_free(name):
                return "{param:%s}" % name
            # A free-form parameter could be "*": keep it visible as a wildcard.
            return "{param:%s:*}" % name
        if name in self.resources:
            return "{ref:%s}" % name
        raise Unresolvable(f"Ref to unknown name {name!r}")

    def getatt(self, logical, attribute):
        resource = self.resources.get(logical)
        if resource is None:
            raise Unresolvable(f"Fn::GetAtt of unknown resource {logical!r}")
        if resource.get("Type") == "AWS::Logs::LogGroup" and attribute == "Arn":
            # CloudFormation returns the log group ARN with a trailing ":*".
            return "arn:{AWS::Partition}:logs:{AWS::Region}:{AWS::AccountId}:log-group:{ref:%s}:*" % logical
        return "{%s:%s}" % (attribute.lower(), logical)

    def values(self, node):
        """Every string `node` can resolve to; None stands for AWS::NoValue."""
        if isinstance(node, str):
            return [node]
        if isinstance(node, (int, float, bool)):
            return [str(node)]
        if isinstance(node, dict) and len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return [None] if arg == "AWS::NoValue" else [self.ref(arg)]
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return [self.getatt(logical, attribute)]
            if key == "Fn::If":
                taken = self.condition(arg[0])
                if taken is None:
                    return self.values(arg[1]) + self.values(arg[2])
                return self.values(arg[1] if taken else arg[2])
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                delimiter, parts = arg
                if not isinstance(parts, list):
                    raise Unresolvable("Fn::Join over a computed list")
                choices = [self.values(p) for p in parts]
                return [delimiter.join(c for c in combo if c is not None) for combo in itertools.product(*choices)]
        raise Unresolvable(f"cannot resolve {json.dumps(node)[:120]}")

    def sub(self, arg):
        if isinstance(arg, str):
            text, variables = arg, {}
        else:
            text, variables = arg[0], arg[1]
        pieces = re.split(r"(\$\{[^}]*\})", text)
        choices = []
        for piece in pieces:
            if piece.startswith("${!"):
                choices.append(["${" + piece[3:]])
            elif piece.startswith("${"):
                name = piece[2:-1]
                if name in variables:
                    choices.append(self.values(variables[name]))
                elif "." in name:
                    logical, attribute = name.split(".", 1)
                    choices.append([self.getatt(logical, attribute)])
                else:
                    choices.append([self.ref(name)])
            else:
                choices.append([piece])
        return ["".join(c or "" for c in combo) for combo in itertools.product(*choices)]


def as_list(value):
    return value if isinstance(value, list) else [value]


def find_policy_documents(node, path):
    """Yields (path, document) for every policy document under node."""
    if isinstance(node, dict):
        statements = node.get("Statement")
        if isinstance(statements, (list, dict)) and any(
            isinstance(s, dict) and ("Effect" in s or "Fn::If" in s) for s in as_list(statements)
        ):
            yield path, node
            return
        for key, value in node.items():
            yield from find_policy_documents(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from find_policy_documents(value, f"{path}[{i}]")


class Checker:
    def __init__(self, template, args):
        self.template = template
        self.args = args
        self.resources = template.get("Resources") or {}
        self.variant = {}
        self.resolve = Resolver(template)
        self.errors = []
        self.notes = []

    def set_variant(self, variant):
        """Checks from now on hold the variant's parameter values fixed."""
        self.variant = variant
        self.resolve = Resolver(self.template, variant)

    def label(self):
        return "".join(f"[{name}={value}] " for name, value in self.variant.items())

    def error(self, where, message):
        self.errors.append(f"{self.label()}{where}: {message}")

    def variants(self):
        """One variant per value of the owner-index parameter, or one empty variant when
        the template has no such parameter."""
        name = self.args.owner_index_parameter
        spec = (self.template.get("Parameters") or {}).get(name)
        if spec is None:
            return [{}]
        values = [str(v) for v in spec.get("AllowedValues") or []]
        if self.args.owner_index_enabled_value not in values:
            self.error(f"Parameters.{name}", f"AllowedValues {values} lack "
                       f"{self.args.owner_index_enabled_value!r}, so neither variant can be checked")
            return [{}]
        return [{name: value} for value in values]

    def statements(self, where, node, decide):
        """(where, statement) for every statement of a policy's Statement `node`. An
        `Fn::If` takes the branch the variant decides; an undecided one yields both branches
        when `decide` is False (rule 1: anything either could grant) and is an error when it
        is True (rules 3 and 4 count exactly what is granted)."""
        for i, item in enumerate(as_list(node)):
            yield from self.expand_statement(f"{where}[{i}]", item, decide)

    def expand_statement(self, where, node, decide):
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from self.expand_statement(f"{where}[{i}]", item, decide)
        elif node == {"Ref": "AWS::NoValue"}:
            return
        elif isinstance(node, dict) and set(node) == {"Fn::If"}:
            arg = node["Fn::If"]
            if not (isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str)):
                self.error(where, f"malformed Fn::If {json.dumps(arg)[:120]} (cannot verify what it grants)")
                return
            taken = self.resolve.condition(arg[0])
            if taken is None and decide:
                self.error(where, f"a statement under Fn::If {arg[0]!r}, a condition this check cannot "
                           f"decide (it counts exactly what is granted)")
                return
            if taken is not False:
                yield from self.expand_statement(f"{where}.Fn::If[{arg[0]}]", arg[1], decide)
            if taken is not True:
                yield from self.expand_statement(f"{where}.Fn::If[!{arg[0]}]", arg[2], decide)
        elif isinstance(node, dict) or not decide:
            yield where, node
        # else: not a statement at all, which rule 1 reports.

    def strings(self, where, node):
        try:
            return [v for v in self.resolve.values(node) if v is not None]
        except Unresolvable as e:
            self.error(where, f"{e} (cannot verify it is wildcard-free)")
            return []

    def is_own_log_streams(self, resource):
        m = re.fullmatch(
            r"arn:\{AWS::Partition\}:logs:\{AWS::Region\}:\{AWS::AccountId\}:log-group:\{ref:([A-Za-z0-9]+)\}:\*",
            resource,
        )
        return bool(m) and (self.resources.get(m.group(1)) or {}).get("Type") == "AWS::Logs::LogGroup"

    # ---------------------------------------------------------------- rule 1
    def check_wildcards(self):
        for logical, resource in self.resources.items():
            where = f"Resources.{logical}"
            for path, document in find_policy_documents(resource.get("Properties") or {}, where):
                for at, statement in self.statements(f"{path}.Statement", document["Statement"], decide=False):
                    self.check_statement(at, statement)
            if resource.get("Type") == "AWS::Lambda::Permission":
                for action in self.strings(where, (resource.get("Properties") or {}).get("Action")):
                    if any(w in action for w in WILDCARDS):
                        self.error(where, f"wildcard in Action {action!r}")

    def check_statement(self, where, statement):
        if not isinstance(statement, dict):
            self.error(where, f"statement {json.dumps(statement)[:120]} is not an object (cannot verify it)")
            return
        sid = statement.get("Sid")
        where = f"{where}{' (' + sid + ')' if sid else ''}"
        for key in ("NotAction", "NotResource"):
            if key in statement:
                self.error(where, f"{key} grants everything except a list; name what is granted instead")
        actions = [a for node in as_list(statement.get("Action", [])) for a in self.strings(where, node)]
        for action in actions:
            if any(w in action for w in WILDCARDS):
                self.error(where, f"wildcard in Action {action!r}")
        for node in as_list(statement.get("Resource", [])):
            for resource in self.strings(where, node):
                if not any(w in resource for w in WILDCARDS):
                    continue
                if self.is_own_log_streams(resource) and set(actions) <= LOG_STREAM_ACTIONS:
                    continue
                self.error(where, f"wildcard in Resource {resource!r}")

    # ---------------------------------------------------------------- rule 2
    def is_imported_app_policy(self, node):
        expected = "${%s}-AppTablePolicyArn" % self.args.sessions_stack_parameter
        return (self.args.app_stack and isinstance(node, dict) and set(node) == {"Fn::ImportValue"}
                and node["Fn::ImportValue"] == {"Fn::Sub": expected}
                and self.args.sessions_stack_parameter in (self.template.get("Parameters") or {}))

    def check_managed_policy_attachments(self):
        for logical, resource in self.resources.items():
            if resource.get("Type") != "AWS::IAM::Role":
                continue
            for node in (resource.get("Properties") or {}).get("ManagedPolicyArns") or []:
                if self.is_imported_app_policy(node):
                    continue
                if not (isinstance(node, dict) and node.get("Ref") in self.resources
                        and self.resources[node["Ref"]].get("Type") == "AWS::IAM::ManagedPolicy"):
                    self.error(f"Resources.{logical}.ManagedPolicyArns",
                               f"attaches {json.dumps(node)}, which is not a managed policy of this template")

    # ---------------------------------------------------------------- rules 3 and 4
    def table_arns(self):
        arns = set()
        if self.args.table in self.resources:
            arns.add("{arn:%s}" % self.args.table)
        arns.add("arn:{AWS::Partition}:dynamodb:{AWS::Region}:{AWS::AccountId}:table/{param:%s}"
                 % self.args.existing_table_parameter)
        return arns

    def role_statements(self, role):
        """(where, statement) for every statement that applies to the role."""
        properties = self.resources[role].get("Properties") or {}
        for i, policy in enumerate(properties.get("Policies") or []):
            yield from self.statements(f"Resources.{role}.Policies[{i}].Statement",
                                       policy["PolicyDocument"]["Statement"], decide=True)
        for node in properties.get("ManagedPolicyArns") or []:
            name = node.get("Ref") if isinstance(node, dict) else None
            if name in self.resources:
                document = self.resources[name]["Properties"]["PolicyDocument"]
                yield from self.statements(f"Resources.{name}.Statement", document["Statement"], decide=True)
        for logical, resource in self.resources.items():
            if resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy"):
                roles = resource["Properties"].get("Roles") or [resource["Properties"].get("RoleName")]
                if {"Ref": role} in roles:
                    yield from self.statements(f"Resources.{logical}.Statement",
                                               resource["Properties"]["PolicyDocument"]["Statement"], decide=True)

    def grants(self, where, statement):
        actions = [a for node in as_list(statement.get("Action", [])) for a in self.strings(where, node)]
        resources = [r for node in as_list(statement.get("Resource", [])) for r in self.strings(where, node)]
        return actions, resources

    def leading_keys(self, where, statement):
        """(operator, sorted patterns) when the statement's Condition is one operator on
        dynamodb:LeadingKeys alone; None for no condition or any other."""
        condition = statement.get("Condition")
        if not isinstance(condition, dict) or len(condition) != 1:
            return None
        (operator, block), = condition.items()
        if not isinstance(block, dict) or set(block) != {"dynamodb:LeadingKeys"}:
            return None
        return operator, sorted(p for node in as_list(block["dynamodb:LeadingKeys"]) for p in self.strings(where, node))

    def checkpoint_condition_ok(self, where, statement):
        found = self.leading_keys(where, statement)
        if found is None or found[0] != "ForAllValues:StringLike":
            return False
        allowed = {CHECKPOINT_SUFFIX, "{param:%s}%s" % (self.args.key_prefix_parameter, CHECKPOINT_SUFFIX)}
        return bool(found[1]) and set(found[1]) <= allowed

    def check_sweepers(self):
        functions = [logical for logical, resource in self.resources.items()
                     if re.fullmatch(self.args.sweeper_function, logical)
                     and resource.get("Type") in ("AWS::Lambda::Function", "AWS::Serverless::Function")]
        if not functions:
            self.error(self.args.sweeper_function, "no Lambda function matches")
        for function in functions:
            self.check_sweeper(function)

    def check_app_roles(self):
        roles = [logical for logical, resource in self.resources.items()
                 if resource.get("Type") == "AWS::IAM::Role"
                 and "lambda.amazonaws.com" in json.dumps(resource["Properties"].get("AssumeRolePolicyDocument"))]
        if not roles:
            self.error("Resources", "no Lambda role in the app stack")
        for role in roles:
            properties = self.resources[role].get("Properties") or {}
            attached = properties.get("ManagedPolicyArns") or []
            if not any(self.is_imported_app_policy(node) for node in attached):
                self.error(f"Resources.{role}", "does not attach the sessions stack's app policy")
            self.notes.append(f"app role {role}: managed {json.dumps(attached)}; statements:")
            for where, statement in self.role_statements(role):
                actions, resources = self.grants(where, statement)
                self.notes.append(f"  {statement.get('Effect')} {sorted(set(actions))} on {sorted(set(resources))}")
                if statement.get("Effect") != "Allow":
                    continue
                if not (set(actions) <= LOG_STREAM_ACTIONS and resources
                        and all(self.is_own_log_streams(r) for r in resources)):
                    self.error(where, f"app role grants {sorted(set(actions))} on {sorted(set(resources))}, "
                               "beyond its own log streams")

    def check_sweeper(self, name):
        function = self.resources[name]
        properties = function.get("Properties") or {}
        role = properties.get("Role")
        if not (isinstance(role, dict) and "Fn::GetAtt" in role):
            self.error(name, "Role must be a role of this template (Fn::GetAtt ROLE.Arn)")
            return
        role = as_list(role["Fn::GetAtt"])[0].split(".")[0]
        log_group = ((properties.get("LoggingConfig") or {}).get("LogGroup") or {})
        log_group = log_group.get("Ref") if isinstance(log_group, dict) else None
        own_logs = "arn:{AWS::Partition}:logs:{AWS::Region}:{AWS::AccountId}:log-group:{ref:%s}:*" % log_group
        tables = self.table_arns()
        expected = {
            ("dynamodb:Scan", "table", "any key"),
            ("dynamodb:PartiQLDelete", "table", "any key"),
            ("dynamodb:DescribeTable", "table", "any key"),
            ("dynamodb:DescribeTimeToLive", "table", "any key"),
            ("dynamodb:GetItem", "table", "checkpoint key"),
            ("dynamodb:PutItem", "table", "checkpoint key"),
            ("dynamodb:DeleteItem", "table", "checkpoint key"),
            ("logs:CreateLogStream", "own log group", "-"),
            ("logs:PutLogEvents", "own log group", "-"),
        }
        granted = set()
        self.notes.append(f"sweeper role {role} (function {name}):")
        for where, statement in self.role_statements(role):
            actions, resources = self.grants(where, statement)
            self.notes.append(f"  {statement.get('Effect')} {sorted(set(actions))} on {sorted(set(resources))}"
                              + (f" if {json.dumps(statement['Condition'])}" if "Condition" in statement else ""))
            if statement.get("Effect") != "Allow":
                continue
            checkpoint_only = self.checkpoint_condition_ok(where, statement)
            if "Condition" in statement and not checkpoint_only:
                self.error(where, "sweeper statement has a condition other than the checkpoint LeadingKeys one")
            for resource in resources:
                if resource in tables:
                    kind = "table"
                elif log_group and resource == own_logs:
                    kind = "own log group"
                else:
                    self.error(where, f"sweeper role reaches {resource!r}, which is neither the sessions table nor its own log group")
                    continue
                for action in actions:
                    scope = "-" if kind != "table" else ("checkpoint key" if checkpoint_only else "any key")
                    granted.add((action, kind, scope))
        for extra in sorted(granted - expected):
            action, kind, scope = extra
            if action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem") and scope == "any key":
                self.error(f"Resources.{role}", f"{action} on the table is not restricted to the checkpoint item "
                           f"(needs ForAllValues:StringLike dynamodb:LeadingKeys <prefix>{CHECKPOINT_SUFFIX})")
            else:
                self.error(f"Resources.{role}", f"sweeper is granted {action} on {kind} ({scope}), beyond its contract")
        for missing in sorted(expected - granted):
            self.error(f"Resources.{role}", "sweeper lacks %s on %s (%s), which it needs" % missing)

    def check_app_policy(self):
        policy = self.resources.get(self.args.app_policy)
        if not policy or policy.get("Type") != "AWS::IAM::ManagedPolicy":
            self.error(self.args.app_policy, "no such AWS::IAM::ManagedPolicy")
            return
        tables = self.table_arns()
        indexes = self.owner_index_arns()
        prefix = "{param:%s}" % self.args.key_prefix_parameter
        allow_keys = (APP_ALLOW_KEYS[0], [prefix + APP_ALLOW_KEYS[1]])
        deny_keys = (APP_DENY_KEYS[0], [prefix + APP_DENY_KEYS[1]])
        granted, denied, described = set(), set(), set()
        queries = []  # (where, whether it is exactly the owner index's Query statement)
        self.notes.append(f"app policy {self.args.app_policy}:")
        for where, statement in self.statements(f"Resources.{self.args.app_policy}.Statement",
                                                policy["Properties"]["PolicyDocument"]["Statement"],
                                                decide=True):
            actions, resources = self.grants(where, statement)
            keys = self.leading_keys(where, statement)
            self.notes.append(f"  {statement.get('Effect')} {sorted(set(actions))} on {sorted(set(resources))}"
                              + (f" if {json.dumps(statement['Condition'])}" if "Condition" in statement else ""))
            if statement.get("Effect") == "Deny":
                # A Deny only takes away; rule 4 needs the reserved-keys one, on the table.
                if keys == deny_keys and resources and set(resources) <= tables:
                    denied |= set(actions)
                continue
            if statement.get("Effect") != "Allow":
                continue
            if QUERY_ACTION in actions:
                queries.append((where, self.owner_index_query_ok(where, statement, actions, resources, indexes)))
                continue
            for resource in resources:
                if resource not in tables:
                    self.error(where, f"app policy reaches {resource!r}, which is not the sessions table")
            if actions and set(actions) <= DESCRIBE_ACTIONS:
                # The startup check's statement: no condition (the actions name no item key).
                if "Condition" in statement:
                    self.error(where, f"app policy's startup-check statement has the condition "
                               f"{json.dumps(statement['Condition'])}, expected none")
                elif resources and set(resources) <= tables:
                    described |= set(actions)
                continue
            if keys != allow_keys:
                self.error(where, f"app policy allows under the condition {json.dumps(statement.get('Condition'))}, "
                           f"expected exactly {allow_keys[0]} dynamodb:LeadingKeys <{self.args.key_prefix_parameter}>"
                           f"{APP_ALLOW_KEYS[1]} (the deployment's own keys)")
            granted |= set(actions)
        if granted != APP_ACTIONS:
            self.error(f"Resources.{self.args.app_policy}",
                       f"grants {sorted(granted)}, expected exactly {sorted(APP_ACTIONS)} under the "
                       f"LeadingKeys condition (and {sorted(DESCRIBE_ACTIONS)} alone, unconditioned)")
        if described != DESCRIBE_ACTIONS:
            self.error(f"Resources.{self.args.app_policy}",
                       f"allows {sorted(described)} for the startup check, expected exactly "
                       f"{sorted(DESCRIBE_ACTIONS)} on the sessions table, in an Allow of their own "
                       f"with no condition")
        if denied != APP_ACTIONS:
            self.error(f"Resources.{self.args.app_policy}",
                       f"denies {sorted(denied)} on the reserved keys, expected exactly {sorted(APP_ACTIONS)} on the "
                       f"sessions table under {deny_keys[0]} dynamodb:LeadingKeys "
                       f"<{self.args.key_prefix_parameter}>{APP_DENY_KEYS[1]} (the sweeper's checkpoints among them)")
        name = self.args.owner_index_parameter
        enabled = self.variant.get(name) == self.args.owner_index_enabled_value
        if enabled and [ok for _, ok in queries] != [True]:
            self.error(f"Resources.{self.args.app_policy}",
                       f"has {len(queries)} statement(s) allowing {QUERY_ACTION}, {sum(ok for _, ok in queries)} "
                       f"of them as expected; with the owner index enabled, expected exactly one Allow of "
                       f"{QUERY_ACTION} alone, with no condition, on {self.describe_indexes(indexes)}")
        if not enabled and queries:
            state = f"{name}={self.variant[name]}" if name in self.variant else f"no {name} parameter"
            self.error(f"Resources.{self.args.app_policy}",
                       f"allows {QUERY_ACTION} ({', '.join(w for w, _ in queries)}) with {state}, expected none "
                       "(the owner index is off)")

    def owner_index_arns(self):
        """The owner index's ARN on each form of the sessions table's ARN."""
        name = self.resolve.ref(self.args.owner_index_name_parameter) \
            if self.args.owner_index_name_parameter in self.resolve.parameters else None
        if name is None or name.endswith(":*}"):
            # No such parameter, or one that could hold a wildcard: no ARN qualifies.
            return set()
        return {f"{table}/index/{name}" for table in self.table_arns()}

    def describe_indexes(self, indexes):
        return sorted(indexes) if indexes else \
            f"the owner index (<table ARN>/index/<{self.args.owner_index_name_parameter}>, its name wildcard-free)"

    def owner_index_query_ok(self, where, statement, actions, resources, indexes):
        """Whether an Allow that grants dynamodb:Query is the owner index's statement:
        Query alone, no condition, on the owner index and nothing else."""
        ok = True
        if set(actions) != {QUERY_ACTION}:
            self.error(where, f"{QUERY_ACTION} shares a statement with {sorted(set(actions) - {QUERY_ACTION})}; "
                       "the owner index's Query is an Allow of its own")
            ok = False
        if "Condition" in statement:
            self.error(where, f"the owner index's {QUERY_ACTION} has the condition "
                       f"{json.dumps(statement['Condition'])}, expected none (on an index, dynamodb:LeadingKeys "
                       "is the index's key, the owner, not a session key)")
            ok = False
        if not resources:
            self.error(where, f"{QUERY_ACTION} names no resource it can be checked on")
            ok = False
        for resource in resources:
            if resource not in indexes:
                what = "the sessions table itself" if resource in self.table_arns() else "not the owner index"
                self.error(where, f"app policy allows {QUERY_ACTION} on {resource!r}, {what}; expected only "
                           f"{self.describe_indexes(indexes)}")
                ok = False
        return ok

    # ---------------------------------------------------------------- rule 5
    def check_key_prefix_parameter(self):
        name = self.args.key_prefix_parameter
        spec = (self.template.get("Parameters") or {}).get(name)
        if spec is None:
            return
        # No AllowedPattern allows any value.
        pattern = spec.get("AllowedPattern", "(?s:.*)")
        where = f"Parameters.{name}"
        for value in KEY_PREFIXES_VALID:
            if not re.fullmatch(pattern, value):
                self.error(where, f"AllowedPattern {pattern!r} refuses {value!r}, a valid key prefix")
        for value, why in KEY_PREFIXES_INVALID.items():
            if re.fullmatch(pattern, value):
                self.error(where, f"AllowedPattern {pattern!r} accepts {value!r}, an invalid key prefix: {why}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("template")
    parser.add_argument("--sweeper-function", default="SweeperFunction[0-9]*",
                        help="regular expression for the sweeper functions' logical ids")
    parser.add_argument("--table", default="SessionsTable")
    parser.add_argument("--existing-table-parameter", default="ExistingTableName")
    parser.add_argument("--key-prefix-parameter", default="KeyPrefix")
    parser.add_argument("--app-policy", default="AppTablePolicy")
    parser.add_argument("--app-stack", action="store_true",
                        help="the example app's template: rules 1, 2 and the app-role rule")
    parser.add_argument("--sessions-stack-parameter", default="SessionsStackName")
    parser.add_argument("--owner-index-parameter", default="OwnerIndex",
                        help="the parameter that turns the owner index on; its AllowedValues are the variants")
    parser.add_argument("--owner-index-enabled-value", default="enabled")
    parser.add_argument("--owner-index-name-parameter", default="OwnerIndexName")
    args = parser.parse_args()

    checker = Checker(load(args.template), args)
    checker.check_wildcards()
    checker.check_managed_policy_attachments()
    checker.check_key_prefix_parameter()
    variants = checker.variants()
    for variant in variants:
        checker.set_variant(variant)
        if variant:
            checker.notes.append(f"variant {checker.label().strip()}:")
        if args.app_stack:
            checker.check_app_roles()
        else:
            checker.check_sweepers()
            checker.check_app_policy()
    for note in checker.notes:
        print(note)
    if checker.errors:
        print(f"IAM check FAILED for {args.template}: {len(checker.errors)} problem(s)", file=sys.stderr)
        for error in checker.errors:
            print(f"  - {error}", file=sys.stderr)
        return 1
    scope = ("the app role holds the sessions stack's app policy and its own log streams only" if args.app_stack
             else "sweeper and app policy limited to the sessions table, the app policy to its own keys "
             "(bar the startup check's DescribeTable and DescribeTimeToLive)")
    if variants != [{}]:
        labels = ", ".join(" ".join(f"{k}={x}" for k, x in v.items()) for v in variants)
        scope += f"; checked in each variant ({labels})"
    print(f"IAM check passed for {args.template}: no wildcard action or resource (bar own log streams), {scope}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
