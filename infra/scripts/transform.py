#!/usr/bin/env python3
"""Transforms a SAM template into plain CloudFormation, offline, with aws-sam-translator.

This is what the AWS::Serverless-2016-10-31 transform does at deploy time, so SAM-level
mistakes (an unknown event type, a misspelt event property) fail here, which
`cfn-lint` alone does not catch. A template that also declares AWS::LanguageExtensions
(Fn::ForEach) is first expanded with the SAM CLI's own implementation of that transform
(samcli.lib.cfn_language_extensions), as CloudFormation does before the SAM transform.
No AWS call is made:

- local code paths (`CodeUri: ../sweeper-lambda`) are replaced by a dummy S3 URI, as
  `sam validate` does, since the translator only accepts S3 locations;
- the managed-policy loader is a stub (the template names no AWS managed policy by
  name; if one did, the transform fails here rather than guessing its ARN);
- region, partition and account are fixed dummies.

`--parameter NAME=VALUE` (repeatable) transforms with that parameter's value, as `sam
deploy --parameter-overrides` would (`.ci/infra.sh` transforms `OwnerIndex=enabled` so);
the value must satisfy the parameter's AllowedValues or AllowedPattern, and OUTPUT records
it as the parameter's Default, so that what reads OUTPUT sees which variant it is.

Usage: transform.py [--parameter NAME=VALUE ...] TEMPLATE.yaml OUTPUT.json
Exit status 0 on success, 1 with the translator's messages on a rejected template.
"""

import copy
import json
import os
import re
import sys

DUMMY_REGION = "eu-west-1"
DUMMY_ACCOUNT = "123456789012"
DUMMY_BUCKET = "offline-validation-artifacts"
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"

# Properties holding local paths that `sam package` would upload, by resource type.
LOCAL_PATH_PROPERTIES = {
    "AWS::Serverless::Function": ["CodeUri"],
    "AWS::Serverless::LayerVersion": ["ContentUri"],
    "AWS::Serverless::Api": ["DefinitionUri"],
    "AWS::Serverless::HttpApi": ["DefinitionUri"],
    "AWS::Serverless::StateMachine": ["DefinitionUri"],
}


class OfflineManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader, which lists policies through IAM."""

    def load(self):
        return {}


def replace_local_paths(properties, names):
    for name in names:
        value = properties.get(name)
        if isinstance(value, str) and not value.startswith("s3://"):
            properties[name] = f"s3://{DUMMY_BUCKET}/{value.strip('./') or 'root'}.zip"


def literal_sub(node):
    """The string of `{"Fn::Sub": "Name0"}` once no variable is left in it, else None."""
    if isinstance(node, dict) and set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str) \
            and "${" not in node["Fn::Sub"]:
        return node["Fn::Sub"]
    return None


def resolve_sub_in_ref(node):
    """`{"Ref": {"Fn::Sub": "Name0"}}` and `{"Fn::FindInMap": [M, {"Fn::Sub": "Key0"}, K]}`,
    how a loop names one of its own resources or map keys, become plain names once the
    loop variable is substituted, as the transform does."""
    if isinstance(node, dict):
        if len(node) == 1 and literal_sub(node.get("Ref")) is not None:
            return {"Ref": literal_sub(node["Ref"])}
        if len(node) == 1 and isinstance(node.get("Fn::FindInMap"), list):
            # Keys of Fn::FindInMap may be intrinsics under the transform.
            return {"Fn::FindInMap": [literal_sub(key) if literal_sub(key) is not None
                                      else resolve_sub_in_ref(key)
                                      for key in node["Fn::FindInMap"]]}
        return {key: resolve_sub_in_ref(value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_sub_in_ref(value) for value in node]
    return node


def expand_language_extensions(template):
    """Applies AWS::LanguageExtensions when the template declares it, then drops it from
    the Transform list (what is left is for the SAM translator)."""
    transforms = template.get("Transform") or []
    transforms = [transforms] if isinstance(transforms, str) else list(transforms)
    if LANGUAGE_EXTENSIONS not in transforms:
        return template
    # Only the loop expansion: the SAM CLI's default pipeline would also resolve every
    # parameter and pseudo parameter it can, which CloudFormation does not, and which
    # would hide what the IAM check reads.
    from samcli.lib.cfn_language_extensions import (
        ProcessingPipeline,
        PseudoParameterValues,
        ResolutionMode,
        TemplateParsingProcessor,
        TemplateProcessingContext,
        create_default_intrinsic_resolver,
    )
    from samcli.lib.cfn_language_extensions.processors import ForEachProcessor

    values = {
        name: spec["Default"]
        for name, spec in (template.get("Parameters") or {}).items()
        if "Default" in spec
    }
    context = TemplateProcessingContext(
        fragment=copy.deepcopy(template),
        parameter_values=values,
        pseudo_parameters=PseudoParameterValues(region=DUMMY_REGION, account_id=DUMMY_ACCOUNT),
        resolution_mode=ResolutionMode.PARTIAL,
    )
    pipeline = ProcessingPipeline([
        TemplateParsingProcessor(),
        ForEachProcessor(intrinsic_resolver=create_default_intrinsic_resolver(context)),
    ])
    expanded = resolve_sub_in_ref(pipeline.process_template(context))
    rest = [t for t in transforms if t != LANGUAGE_EXTENSIONS]
    if rest:
        expanded["Transform"] = rest[0] if len(rest) == 1 else rest
    else:
        expanded.pop("Transform", None)
    return expanded


def set_parameters(template, overrides):
    """Makes each override its parameter's Default; a message when one cannot be."""
    parameters = template.get("Parameters") or {}
    for name, value in overrides.items():
        spec = parameters.get(name)
        if spec is None:
            return f"--parameter {name}: the template has no such parameter"
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            return f"--parameter {name}={value}: not one of its AllowedValues {spec['AllowedValues']}"
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            return f"--parameter {name}={value}: does not match its AllowedPattern {spec['AllowedPattern']!r}"
        spec["Default"] = value
    return None


def main(argv):
    positional, overrides = [], {}
    rest = list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg == "--parameter" and rest and "=" in rest[0]:
            name, _, value = rest.pop(0).partition("=")
            overrides[name] = value
        else:
            positional.append(arg)
    if len(positional) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, output = positional

    # The translator builds a boto3 session only to read the region; no credentials and
    # no endpoint are ever used.
    os.environ["AWS_DEFAULT_REGION"] = DUMMY_REGION
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    problem = set_parameters(template, overrides)
    if problem:
        print(f"{source}: {problem}", file=sys.stderr)
        return 1
    try:
        template = expand_language_extensions(template)
    except Exception as e:  # the library's own InvalidTemplateException, and its kin
        print(f"{source}: AWS::LanguageExtensions rejected the template: {e}", file=sys.stderr)
        return 1

    for resource in (template.get("Resources") or {}).values():
        names = LOCAL_PATH_PROPERTIES.get(resource.get("Type"))
        if names and isinstance(resource.get("Properties"), dict):
            replace_local_paths(resource["Properties"], names)
    for section, names in (("Function", ["CodeUri"]), ("LayerVersion", ["ContentUri"])):
        globals_section = (template.get("Globals") or {}).get(section)
        if isinstance(globals_section, dict):
            replace_local_paths(globals_section, names)

    parameters = {
        "AWS::Region": DUMMY_REGION,
        "AWS::Partition": "aws",
        "AWS::AccountId": DUMMY_ACCOUNT,
        **overrides,
    }
    try:
        transformed = transform(template, parameters, OfflineManagedPolicyLoader())
    except InvalidDocumentException as e:
        print(f"{source}: the SAM transform rejected the template:", file=sys.stderr)
        for cause in e.causes:
            print(f"  - {cause.message}", file=sys.stderr)
        return 1

    with open(output, "w", encoding="utf-8") as f:
        json.dump(transformed, f, indent=2, sort_keys=False)
        f.write("\n")
    kinds = {}
    for resource in transformed.get("Resources", {}).values():
        kinds[resource["Type"]] = kinds.get(resource["Type"], 0) + 1
    summary = ", ".join(f"{n} {t}" for t, n in sorted(kinds.items()))
    given = "".join(f" {name}={value}" for name, value in overrides.items())
    print(f"{source}{given} -> {output}: {sum(kinds.values())} resources ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
