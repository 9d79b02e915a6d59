#!/usr/bin/env python3
"""Transforms a SAM template into plain CloudFormation, offline, with aws-sam-translator.

This is what the AWS::Serverless-2016-10-31 transform does at deploy time, so SAM-level
mistakes (an unknown event type, a misspelt event property) fail here, which
`cfn-lint` alone does not catch. No AWS call is made:

- local code paths (`CodeUri: ../sweeper-lambda`) are replaced by a dummy S3 URI, as
  `sam validate` does, since the translator only accepts S3 locations;
- the managed-policy loader is a stub (the template names no AWS managed policy by
  name; if one did, the transform fails here rather than guessing its ARN);
- region, partition and account are fixed dummies.

Usage: transform.py TEMPLATE.yaml OUTPUT.json
Exit status 0 on success, 1 with the translator's messages on a rejected template.
"""

import json
import os
import sys

DUMMY_REGION = "eu-west-1"
DUMMY_ACCOUNT = "123456789012"
DUMMY_BUCKET = "offline-validation-artifacts"

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


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, output = argv[1], argv[2]

    # The translator builds a boto3 session only to read the region; no credentials and
    # no endpoint are ever used.
    os.environ["AWS_DEFAULT_REGION"] = DUMMY_REGION
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())

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
    print(f"{source} -> {output}: {sum(kinds.values())} resources ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
